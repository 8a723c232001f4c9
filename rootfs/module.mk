# rootfs/: guest kernel, initramfs and root filesystem images.
