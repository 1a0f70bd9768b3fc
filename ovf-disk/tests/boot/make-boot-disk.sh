#!/usr/bin/env bash
# Builds the tiny bootable disk of the boot tests (ovf-disk/tests/boot.rs, issue 33):
#   make-boot-disk.sh OUT.raw
# One MBR partition (FAT32, active) holding Debian's kernel and a busybox initramfs, booted by
# SYSLINUX under a BIOS (mbr.bin + ldlinux.sys) and by systemd-boot under UEFI
# (\EFI\BOOT\BOOTX64.EFI, the removable-media path OVMF tries on any FAT file system). The
# initramfs loads the disk drivers of the four controllers (sym53c8xx for lsilogic, vmw_pvscsi,
# ata_piix for IDE, ahci for SATA), then prints to the serial console a marker line per disk it
# sees (its name, size and the PCI driver of its controller), the firmware it booted from, and
# powers off. Kernel, busybox and systemd-boot come from Debian's packages (apt-get download,
# unpacked, never installed), cached in target/boot-cache.
set -euo pipefail
out=$(realpath -m "$1")
here=$(cd "$(dirname "$0")" && pwd)
cache=${BOOT_CACHE:-$here/../../../target/boot-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
for tool in mkfs.vfat mcopy sfdisk syslinux cpio; do
    command -v "$tool" >/dev/null || { echo "make-boot-disk: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || { echo "make-boot-disk: $mbr is missing (syslinux-common)" >&2; exit 1; }

cd "$cache"
kver=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-//p' | head -1)
[ -n "$kver" ] || { echo "make-boot-disk: no linux-image-amd64 in apt's lists" >&2; exit 1; }
fetch() { # fetch PACKAGE: its .deb unpacked into root/
    local stamp="root/.$1"
    [ -f "$stamp" ] && return
    rm -f ./"$1"_*.deb
    apt-get download -q=2 "$1" 2>/dev/null || { apt-get update -qq && apt-get download -q=2 "$1"; }
    dpkg-deb -x ./"$1"_*.deb root
    rm -f ./"$1"_*.deb
    touch "$stamp"
}
fetch "linux-image-$kver"
fetch busybox-static
fetch systemd-boot-efi
mods=root/lib/modules/$kver/kernel

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The initramfs: busybox, the modules in load order, /init.
init=$work/initramfs
mkdir -p "$init"/{bin,dev,proc,sys,mods}
cp root/bin/busybox "$init/bin/busybox"
order="drivers/scsi/scsi_common drivers/scsi/scsi_mod crypto/crct10dif_common crypto/crct10dif_generic
lib/crc-t10dif lib/crc64 crypto/crc64_rocksoft_generic lib/crc64-rocksoft block/t10-pi drivers/scsi/sd_mod
drivers/ata/libata drivers/ata/libahci drivers/ata/ahci drivers/ata/ata_piix
drivers/scsi/scsi_transport_spi drivers/scsi/sym53c8xx_2/sym53c8xx drivers/scsi/vmw_pvscsi"
n=10
for m in $order; do
    cp "$mods/$m.ko" "$init/mods/$n-$(basename "$m").ko"
    n=$((n + 1))
done
cat > "$init/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in /mods/*.ko; do insmod "$m" 2>/dev/null; done
firmware=bios
[ -d /sys/firmware/efi ] && firmware=efi
echo "OVFDISK-BOOT firmware=$firmware"
# Disks appear as their controllers finish probing.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    ls /sys/block | grep -q '^sd' && break
    sleep 1
done
sleep 1
for b in /sys/block/sd*; do
    [ -e "$b" ] || continue
    d=$(readlink -f "$b/device")
    driver=none
    while [ "$d" != / ]; do
        if [ -e "$d/driver" ] && [ "$(basename "$(readlink "$d/subsystem")")" = pci ]; then
            driver=$(basename "$(readlink "$d/driver")")
            break
        fi
        d=$(dirname "$d")
    done
    echo "OVFDISK-BOOT disk=$(basename "$b") sectors=$(cat "$b/size") controller=$driver"
done
echo "OVFDISK-BOOT done"
poweroff -f
INIT
chmod +x "$init/init"
(cd "$init" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

# The disk: 64 MiB, one FAT32 partition from sector 2048.
truncate -s 0 "$work/disk.raw"
truncate -s 64M "$work/disk.raw"
echo 'start=2048, type=c, bootable' | sfdisk -q "$work/disk.raw"
part=$work/part.img
truncate -s $(( (64 << 20) - 2048 * 512 )) "$part"
mkfs.vfat -F 32 -n OVFBOOT "$part" >/dev/null
mmd -i "$part" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/syslinux
mcopy -i "$part" "root/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i "$part" "$work/initrd.gz" ::/initrd.gz
mcopy -i "$part" root/usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
args="console=ttyS0 panic=-1 quiet"
printf 'default boot.conf\ntimeout 0\n' > "$work/loader.conf"
printf 'title ovf-disk boot test\nlinux /vmlinuz\ninitrd /initrd.gz\noptions %s\n' "$args" > "$work/boot.conf"
printf 'DEFAULT boot\nPROMPT 0\nTIMEOUT 0\nLABEL boot\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd.gz %s\n' "$args" > "$work/syslinux.cfg"
mcopy -i "$part" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$part" "$work/boot.conf" ::/loader/entries/boot.conf
mcopy -i "$part" "$work/syslinux.cfg" ::/syslinux/syslinux.cfg
syslinux --install --directory /syslinux "$part"
dd if="$part" of="$work/disk.raw" bs=512 seek=2048 conv=notrunc status=none
dd if="$mbr" of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
mv "$work/disk.raw" "$out"
