//! The text views of the libraries' reports: words for people, `not stated` where a package says
//! nothing, sizes in binary units. The `--json` views serialise the same reports.

use std::io::{Result, Write};
use std::path::Path;

use ovf_disk::export;
use ovf_disk::import;
use ovf_disk::package::{self, PackageCheck, VerifyReport};
use vmdk::{CheckReport, DiskInfo, LinkInfo, WriteReport};

/// `bytes` in binary units: `512 B`, `4.00 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

/// A value the package may not state.
/// `n` and the noun, singular or plural (`1 file`, `2 files`).
fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Each network once, in order, with how many NICs connect to it when more than one
/// (`VM Network (3 NICs), Backup`); `none` when there are no NICs.
fn networks(nics: &[String]) -> String {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for n in nics {
        match seen.iter_mut().find(|(name, _)| *name == n.as_str()) {
            Some((_, count)) => *count += 1,
            None => seen.push((n.as_str(), 1)),
        }
    }
    if seen.is_empty() {
        return "none".into();
    }
    seen.iter()
        .map(|(name, n)| match n {
            1 => (*name).to_string(),
            n => format!("{name} ({n} NICs)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn stated<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "not stated".to_string(), f)
}

/// A list in words, `none` when empty.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// The one-line summary of an inflate or a convert.
pub fn write_summary(verb: &str, input: &Path, report: &WriteReport, seconds: f64) -> String {
    let files: Vec<String> = report
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let target = if files.is_empty() {
        "standard output".to_string()
    } else {
        files.join(" + ")
    };
    format!(
        "{verb} {} ({}) to {target}: {} data, {} written, {seconds:.2} s ({:.0} MiB/s)",
        input.display(),
        human(report.capacity),
        human(report.data),
        human(report.written),
        report.capacity as f64 / (1u64 << 20) as f64 / seconds.max(1e-9)
    )
}

/// A check's problems, one line each, and its space counts.
fn check_lines(out: &mut dyn Write, report: &CheckReport) -> Result<()> {
    for p in &report.problems {
        let at = p
            .offset
            .map_or_else(String::new, |o| format!(" at offset {o:#x}"));
        writeln!(
            out,
            "ERROR {}: {}{at}: {}",
            p.path.display(),
            p.structure,
            p.message
        )?;
    }
    for o in &report.omitted {
        writeln!(
            out,
            "ERROR {}: {}: and {} more problems of this structure, not listed",
            o.path.display(),
            o.structure,
            o.count
        )?;
    }
    writeln!(
        out,
        "{} ({}), {} zeroed, {} leaked, {}",
        count(
            report.allocated_grains,
            "allocated grain",
            "allocated grains"
        ),
        human(report.allocated_bytes),
        human(report.zeroed_bytes),
        human(report.leaked_bytes),
        count(report.files.len() as u64, "file", "files")
    )
}

/// `check` on a disk.
pub fn disk_check(out: &mut dyn Write, report: &CheckReport) -> Result<()> {
    check_lines(out, report)?;
    if report.is_clean() {
        writeln!(out, "No errors were found on the image.")
    } else {
        writeln!(
            out,
            "{} found on the image.",
            count(report.problem_count(), "error was", "errors were")
        )
    }
}

/// `check` on a package: the digests, then each disk.
pub fn package_check(out: &mut dyn Write, c: &PackageCheck) -> Result<()> {
    verify(out, &c.verify)?;
    for m in &c.missing {
        writeln!(out, "ERROR {m}")?;
    }
    for f in &c.faults {
        writeln!(out, "ERROR {}: {f}", c.verify.package.display())?;
    }
    if let Some(v) = &c.schema {
        schema(out, v)?;
    }
    for d in &c.disks {
        writeln!(
            out,
            "disk {} ({}, checked {}):",
            d.disk_id,
            d.href,
            d.method.as_str()
        )?;
        if let (Some(declared), Some(capacity)) = (d.declared, d.capacity) {
            if capacity < declared {
                writeln!(
                    out,
                    "  the disk holds {capacity} bytes, the envelope declares {declared}: an import grows it"
                )?;
            }
        }
        check_lines(out, &d.report)?;
    }
    if c.is_clean() {
        writeln!(out, "No errors were found in the package.")
    } else {
        writeln!(
            out,
            "{} found in the package.",
            count(c.problem_count() as u64, "error was", "errors were")
        )
    }
}

/// The envelope's schema violations, as notes.
fn schema(out: &mut dyn Write, v: &ovf::schema::Validation) -> Result<()> {
    if v.is_valid() {
        return writeln!(out, "envelope: valid by {}", v.schema);
    }
    writeln!(
        out,
        "envelope: {} of {} (notes: products read many such envelopes):",
        count(
            (v.violations.len() + v.omitted) as u64,
            "violation",
            "violations"
        ),
        v.schema
    )?;
    for x in &v.violations {
        writeln!(out, "  NOTE {x}")?;
    }
    if v.omitted > 0 {
        writeln!(out, "  NOTE and {} more, not listed", v.omitted)?;
    }
    Ok(())
}

/// Each digest's outcome, the unlisted files and the signature.
pub fn verify(out: &mut dyn Write, report: &VerifyReport) -> Result<()> {
    let package = report.package.display();
    match &report.manifest {
        None => writeln!(out, "{package}: no manifest: nothing can be verified")?,
        Some(m) => writeln!(out, "{package}: manifest {m}")?,
    }
    for f in &report.files {
        writeln!(out, "  {}: {} {}", f.name, f.algorithm.as_str(), f.outcome)?;
    }
    for n in &report.unlisted {
        writeln!(out, "  {n}: not listed in the manifest")?;
    }
    for s in &report.short {
        writeln!(
            out,
            "  {}: {} bytes, shorter than the {} its ovf:size declares: cut short",
            s.file, s.present, s.declared
        )?;
    }
    for c in &report.capacities {
        let what = if c.capacity < c.declared {
            "an import grows it"
        } else {
            "an import refuses it"
        };
        writeln!(
            out,
            "  disk {} ({}): holds {} bytes, the envelope declares {}: {what}",
            c.disk_id, c.file, c.capacity, c.declared
        )?;
    }
    match &report.signature {
        None => writeln!(out, "  signed: no"),
        Some(s) if s.valid => writeln!(
            out,
            "  signed: by {}: the signature covers the manifest (the certificate is not checked \
                against a trust store)",
            s.signer.as_deref().unwrap_or("an unnamed signer")
        ),
        Some(s) => writeln!(
            out,
            "  signed: signature INVALID: {}",
            s.reason.as_deref().unwrap_or("no reason given")
        ),
    }
}

/// What an import wrote.
pub fn import(out: &mut dyn Write, package: &Path, r: &import::Report, seconds: f64) -> Result<()> {
    if r.verify.manifest.is_none() {
        writeln!(
            out,
            "warning: {} has no manifest: nothing was verified",
            package.display()
        )?;
    }
    for d in &r.disks {
        let names: Vec<String> = d.files.iter().map(|f| f.display().to_string()).collect();
        writeln!(
            out,
            "disk {}: {} -> {}",
            d.disk_id,
            d.from,
            names.join(" + ")
        )?;
    }
    for c in &r.carried {
        writeln!(out, "file: {}", c.display())?;
    }
    for e in &r.environment {
        writeln!(out, "OVF environment: {}", e.display())?;
    }
    if let Some(m) = &r.manifest {
        writeln!(out, "manifest: {}", m.display())?;
    }
    for c in &r.configurations {
        writeln!(out, "system {}: {}", c.system, c.file.display())?;
        for u in &c.unmapped {
            writeln!(out, "  unmapped: {u}")?;
        }
    }
    writeln!(
        out,
        "imported {} to {} in {seconds:.2} s",
        package.display(),
        r.descriptor.display()
    )
}

/// What an export wrote.
pub fn export(out: &mut dyn Write, r: &export::Report, seconds: f64) -> Result<()> {
    for m in &r.members {
        writeln!(out, "  {}: {}", m.name, human(m.size))?;
    }
    writeln!(out, "exported {} in {seconds:.2} s", r.ova.display())
}

/// A package: its systems and hardware, disks, files, manifest and signature.
pub fn package_info(out: &mut dyn Write, p: &package::Info) -> Result<()> {
    writeln!(
        out,
        "package:      {} (OVF {})",
        p.package.display(),
        p.ovf_version
    )?;
    package_systems(out, p)?;
    for d in &p.disks {
        writeln!(
            out,
            "disk {}:  {} in {} (format {})",
            d.disk_id,
            d.capacity
                .map_or_else(|| d.capacity_as_written.clone(), human),
            match (&d.file, &d.file_ref) {
                (Some(f), _) => f.clone(),
                (None, Some(r)) => format!("fileRef {r:?}, which names no File in References"),
                (None, None) => "no file (a blank disk)".into(),
            },
            d.format.as_deref().unwrap_or("not stated")
        )?;
    }
    for f in &p.files {
        writeln!(
            out,
            "file {}:  {}; {}",
            f.href,
            f.size.map_or_else(
                || "size not stated".into(),
                |s| format!("declared {s} bytes")
            ),
            match (&f.not_followed, f.present_size) {
                (Some(why), _) => format!("{why}: not followed"),
                (None, Some(s)) => format!("{s} bytes present"),
                (None, None) => "missing".to_string(),
            }
        )?;
    }
    package_options(out, p)?;
    match &p.manifest {
        Some(m) => writeln!(out, "manifest:     {} ({} entries)", m.file, m.entries)?,
        None => writeln!(out, "manifest:     none")?,
    }
    writeln!(
        out,
        "signed:       {}",
        if p.signed {
            "yes (ovf-disk verify checks the signature)"
        } else {
            "no"
        }
    )
}

/// The systems of `package_info`: hardware summary and drives.
fn package_systems(out: &mut dyn Write, p: &package::Info) -> Result<()> {
    for s in &p.systems {
        let name = s
            .name
            .as_deref()
            .map_or_else(String::new, |n| format!(" \"{n}\""));
        let os = s.os.as_ref().map(|o| match &o.description {
            Some(d) => format!("{d} (id {})", o.id),
            None => format!("id {}", o.id),
        });
        writeln!(
            out,
            "system {}{name}:  CPUs {}, memory {}, OS {}",
            s.id,
            stated(s.cpus, |c| c.to_string()),
            stated(s.memory_bytes, human),
            stated(os, |o| o)
        )?;
        writeln!(
            out,
            "  controllers: {}; networks: {}",
            list(&s.controllers),
            networks(&s.nics)
        )?;
        for d in &s.drives {
            writeln!(
                out,
                "  disk drive {} on {}",
                d.host_resource,
                d.controller.as_deref().unwrap_or("an unnamed controller")
            )?;
        }
    }
    Ok(())
}

/// The deployment options and properties of `package_info`.
/// How the hardware of deployment option `other` differs from `default`'s, per system:
/// ` (4 CPUs, 8.00 GiB memory instead of 1 CPU, 4.00 GiB)`, or nothing.
fn option_differences(p: &package::Info, default: &str, other: &str) -> String {
    let of = |id: &str, system: &str| {
        p.configurations
            .iter()
            .find(|c| c.option == id && c.system == system)
    };
    let mut parts = Vec::new();
    for system in &p.systems {
        let (Some(a), Some(b)) = (of(default, &system.id), of(other, &system.id)) else {
            continue;
        };
        let mut now = Vec::new();
        let mut was = Vec::new();
        if a.cpus != b.cpus {
            now.push(
                b.cpus
                    .map_or_else(|| "CPUs not stated".into(), |c| count(c, "CPU", "CPUs")),
            );
            was.push(
                a.cpus
                    .map_or_else(|| "not stated".into(), |c| count(c, "CPU", "CPUs")),
            );
        }
        if a.memory_bytes != b.memory_bytes {
            let m = |v: Option<u64>| v.map_or_else(|| "not stated".into(), human);
            now.push(format!("{} memory", m(b.memory_bytes)));
            was.push(m(a.memory_bytes));
        }
        if a.nics != b.nics {
            now.push(count(b.nics as u64, "NIC", "NICs"));
            was.push(count(a.nics as u64, "NIC", "NICs"));
        }
        if !now.is_empty() {
            let who = if p.systems.len() > 1 {
                format!("{}: ", system.id)
            } else {
                String::new()
            };
            parts.push(format!(
                "{who}{} instead of {}",
                now.join(", "),
                was.join(", ")
            ));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

fn package_options(out: &mut dyn Write, p: &package::Info) -> Result<()> {
    let default = p
        .deployment_options
        .iter()
        .find(|d| d.default)
        .or(p.deployment_options.first());
    for d in &p.deployment_options {
        let is_default = default.is_some_and(|x| x.id == d.id);
        writeln!(
            out,
            "deployment option {}{}: {}{}",
            d.id,
            if is_default { " (default)" } else { "" },
            d.label.as_deref().unwrap_or(""),
            default
                .filter(|_| !is_default)
                .map_or_else(String::new, |x| option_differences(p, &x.id, &d.id))
        )?;
    }
    for prop in &p.properties {
        let default = match (&prop.default, prop.password) {
            (_, true) => " default hidden (a password)".to_string(),
            (Some(v), false) => format!(" default {v:?}"),
            (None, false) => String::new(),
        };
        writeln!(
            out,
            "property {} ({}{}{}){default}{}",
            prop.full_key(),
            prop.kind,
            prop.qualifiers
                .as_deref()
                .map_or_else(String::new, |q| format!(", {q}")),
            if prop.user_configurable {
                ", user-configurable"
            } else {
                ""
            },
            prop.label
                .as_deref()
                .map_or_else(String::new, |l| format!(": {l}"))
        )?;
    }
    Ok(())
}

fn link_header(out: &mut dyn Write, l: &LinkInfo) -> Result<()> {
    let hex = |c: Option<u32>| stated(c, |c| format!("{c:08x}"));
    writeln!(out, "file:         {}", l.file.display())?;
    writeln!(out, "create type:  {}", l.create_type)?;
    writeln!(
        out,
        "capacity:     {} ({} bytes)",
        human(l.capacity),
        l.capacity
    )?;
    if l.cid.is_none() && l.parent_cid.is_none() {
        return Ok(());
    }
    writeln!(
        out,
        "CID:          {}  parentCID: {}",
        hex(l.cid),
        hex(l.parent_cid)
    )
}

/// A disk: its first link with its database and extents, the allocation, the parent chain.
pub fn disk_info(out: &mut dyn Write, info: &DiskInfo) -> Result<()> {
    let l = &info.link;
    link_header(out, l)?;
    for (k, v) in &l.ddb {
        writeln!(out, "{:<13} {v}", format!("{k}:"))?;
    }
    let a = &info.allocation;
    writeln!(
        out,
        "allocation:   {} data, {} zeroed, {} unallocated",
        human(a.data),
        human(a.zero),
        human(a.unallocated)
    )?;
    writeln!(out, "extents:")?;
    for e in &l.extents {
        write!(out, "  {} {} {} sectors", e.access, e.kind, e.sectors)?;
        if let Some(p) = &e.path {
            write!(out, "  {}", p.display())?;
        }
        if let Some(sp) = &e.sparse {
            write!(
                out,
                "  (version {}, flags {:#x}, grain {}, {}{}metadata from {})",
                sp.version,
                sp.flags,
                human(sp.grain_size),
                if sp.compressed { "compressed, " } else { "" },
                if sp.markers { "markers, " } else { "" },
                match sp.metadata_from {
                    vmdk::MetadataSource::Header => "header",
                    vmdk::MetadataSource::Footer => "footer",
                }
            )?;
        }
        if let Some(c) = &e.cowd {
            write!(
                out,
                "  (COWD version {}, grain {}, {} grain tables of {} entries)",
                c.version,
                human(c.grain_size),
                c.grain_tables,
                c.num_gtes_per_gt
            )?;
        }
        if let Some(s) = &e.sesparse {
            write!(
                out,
                "  (seSparse version {:#x}, grain {}, {} grain tables of {} entries)",
                s.version,
                human(s.grain_size),
                s.grain_tables,
                s.num_gtes_per_gt
            )?;
        }
        if let Some(q) = &e.qcow2 {
            write!(
                out,
                "  (qcow2 version {}, cluster {}, {} compression, {} L2 tables{})",
                q.version,
                human(q.cluster_size),
                q.compression_type,
                q.l2_tables,
                q.backing_file
                    .as_deref()
                    .map_or_else(String::new, |b| format!(
                        ", backing file {b}{}",
                        q.backing_format
                            .as_deref()
                            .map_or_else(String::new, |f| format!(" ({f})"))
                    ))
            )?;
        }
        writeln!(out)?;
    }
    for (i, link) in info.chain.iter().enumerate() {
        let cid = link
            .cid
            .map_or_else(String::new, |c| format!(", CID {c:08x}"));
        writeln!(
            out,
            "parent {}:     {} ({}{cid})",
            i + 1,
            link.file.display(),
            link.create_type,
        )?;
    }
    Ok(())
}

/// A VM: its configuration, each disk's chain, the folder's unused files.
pub fn vm_info(out: &mut dyn Write, info: &ovf_disk::vm::Info) -> Result<()> {
    let vm = &info.vm;
    writeln!(out, "vm:           {}", vm.path.display())?;
    writeln!(out, "name:         {}", stated(vm.name.clone(), |n| n))?;
    writeln!(
        out,
        "CPUs {}, memory {}, guest OS {}, firmware {}",
        vm.cpus,
        stated(vm.memory_bytes, human),
        stated(vm.guest_os.clone(), |g| g),
        vm.firmware
    )?;
    for d in &info.chains {
        writeln!(
            out,
            "disk {} ({}): {}, {} link{}",
            d.device,
            d.controller,
            human(d.capacity),
            d.chain.len(),
            if d.chain.len() == 1 { "" } else { "s" }
        )?;
        for l in &d.chain {
            writeln!(
                out,
                "  {} ({}, {})",
                l.file.display(),
                l.create_type,
                human(l.size)
            )?;
        }
    }
    for u in &info.unused {
        writeln!(out, "unused:       {} ({})", u.name, u.kind)?;
    }
    for s in &info.snapshots {
        let disks: Vec<String> = s
            .disks
            .iter()
            .map(|d| format!("{} {}", d.device, d.file))
            .collect();
        writeln!(
            out,
            "snapshot {} {:?}{}{}{}: {}",
            s.uid,
            s.name,
            s.parent.map_or(String::new(), |p| format!(", after {p}")),
            s.created.map_or(String::new(), |t| format!(
                ", taken {} s after 1970 (UTC)",
                t
            )),
            if s.current { ", current" } else { "" },
            disks.join(", ")
        )?;
    }
    Ok(())
}

/// What `inflate VM.vmx` wrote.
pub fn vm_inflate(
    out: &mut dyn Write,
    r: &ovf_disk::vm::InflateReport,
    seconds: f64,
) -> Result<()> {
    for d in &r.disks {
        let names: Vec<String> = d.files.iter().map(|f| f.display().to_string()).collect();
        writeln!(
            out,
            "disk {}: {} ({} link{}) -> {}",
            d.device,
            d.from.display(),
            d.links,
            if d.links == 1 { "" } else { "s" },
            names.join(" + ")
        )?;
    }
    writeln!(
        out,
        "inflated the disks of {} in {seconds:.2} s",
        r.vmx.display()
    )
}

/// Fault Tolerance readiness: each machine's rules, then the verdict.
pub fn ft(out: &mut dyn Write, r: &ovf_disk::rules::FtReport) -> Result<()> {
    let version = match r.version {
        ovf_disk::rules::FtVersion::Smp => "SMP-FT (vSphere 6.0 on)",
        _ => "legacy Fault Tolerance (vSphere 4 to 6.0)",
    };
    writeln!(out, "{}: {version}", r.subject.display())?;
    for m in &r.machines {
        writeln!(out, "{}:", m.machine)?;
        for rule in &m.rules {
            writeln!(
                out,
                "  {:<17} {:<18} {}",
                rule.rule,
                rule.outcome.as_str(),
                rule.detail
            )?;
        }
    }
    writeln!(out, "check on the cluster (no package shows these):")?;
    for c in &r.on_the_cluster {
        writeln!(out, "  - {}", c.requirement)?;
    }
    writeln!(
        out,
        "{}",
        if r.ready {
            "FT-ready after import."
        } else {
            "NOT FT-ready: the rules marked FAIL need changes to the VM."
        }
    )
}

/// What a product would refuse or change, a finding a line.
pub fn lint(out: &mut dyn Write, r: &ovf_disk::rules::LintReport) -> Result<()> {
    for f in &r.findings {
        let severity = match f.severity {
            ovf_disk::rules::Severity::Refuse => "REFUSE",
            ovf_disk::rules::Severity::Change => "change",
            _ => "note",
        };
        writeln!(
            out,
            "{severity:<6} {}: {} {}: {} [{}]",
            f.rule, f.file, f.at, f.message, f.source
        )?;
    }
    writeln!(
        out,
        "{}: {}",
        r.package.display(),
        if r.refused {
            "the target would refuse this package"
        } else if r.findings.is_empty() {
            "nothing the target would refuse or change"
        } else {
            "the target would import this package"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_agree_with_their_numbers() {
        assert_eq!(count(1u64, "file", "files"), "1 file");
        assert_eq!(count(0u64, "file", "files"), "0 files");
        assert_eq!(count(2u64, "error was", "errors were"), "2 errors were");
        let nics = ["VM Network", "Backup", "VM Network", "VM Network"].map(String::from);
        assert_eq!(networks(&nics), "VM Network (3 NICs), Backup");
        assert_eq!(networks(&[]), "none");
    }
}
