# rootfs/: guest kernel, initramfs and root filesystem images.
#
#   make image        $(O)/images/default/{vmlinuz,vmlinux,initrd.img,rootfs.ext4,manifest.json}
#   make image-boot   only the kernel and the initramfs of the default image
#
# Each part has its own dependencies, so a change rebuilds only what it
# touches: the kernel when build-kernel.sh changes; the initramfs when the
# agent, the module list or the kernel changes; the root file system only
# when build-rootfs.sh (or lib.sh) changes. Every file is built under a
# temporary name and renamed into place when complete; the manifest is
# removed first and written last, so a directory with a manifest.json is a
# complete image. See docs/images.md.
#
#   IMAGE_AGENT=PATH      the /init to pack (default $(O)/sbx-agent)
#   ROOTFS_SIZE=2G        virtual size of rootfs.ext4 (applies when it is rebuilt)
#   INITRD_COMPRESS=none  none|gzip|zstd (uncompressed boots fastest under TCG)

IMG_DIR := $(O)/images/default
IMG_WORK := $(O)/images/.work
IMG_KERNEL := $(IMG_WORK)/kernel
IMAGE_AGENT ?= $(O)/sbx-agent
ROOTFS_SIZE ?= 2G
INITRD_COMPRESS ?= none
IMGTOOL := python3 rootfs/imgtool.py

.PHONY: image-boot image-verify
image: $(IMG_DIR)/manifest.json
image-boot: $(IMG_DIR)/vmlinuz $(IMG_DIR)/vmlinux $(IMG_DIR)/initrd.img
image-verify: $(IMG_DIR)/manifest.json
	$(Q)rootfs/sbx-image verify $(IMG_DIR)

$(IMG_KERNEL)/kernel.json: rootfs/build-kernel.sh rootfs/lib.sh
	$(Q)rootfs/build-kernel.sh $(IMG_KERNEL) $(O)/cache

# Copies (not links): the image's file must be newer than kernel.json.
$(IMG_DIR)/vmlinuz $(IMG_DIR)/vmlinux: $(IMG_DIR)/%: $(IMG_KERNEL)/kernel.json
	@mkdir -p $(IMG_DIR)
	$(Q)rm -f $(IMG_DIR)/manifest.json
	$(Q)cp $(IMG_KERNEL)/$* $@.tmp && mv -f $@.tmp $@

$(IMG_DIR)/initrd.img: $(IMAGE_AGENT) $(IMG_KERNEL)/kernel.json rootfs/modules.list rootfs/imgtool.py
	@echo "image: packing the initramfs (agent + modules)..."
	@mkdir -p $(IMG_DIR)
	$(Q)rm -f $(IMG_DIR)/manifest.json
	$(Q)$(IMGTOOL) initrd --kernel-dir $(IMG_KERNEL) --agent $(IMAGE_AGENT) \
		--modules rootfs/modules.list --compress $(INITRD_COMPRESS) \
		--out $@ --info $(IMG_WORK)/initrd.json

$(IMG_DIR)/rootfs.ext4: rootfs/build-rootfs.sh rootfs/lib.sh
	@mkdir -p $(IMG_DIR)
	$(Q)rm -f $(IMG_DIR)/manifest.json
	$(Q)rootfs/build-rootfs.sh $@ $(IMG_WORK) $(ROOTFS_SIZE)

$(IMG_DIR)/manifest.json: $(IMG_DIR)/vmlinuz $(IMG_DIR)/vmlinux $(IMG_DIR)/initrd.img \
		$(IMG_DIR)/rootfs.ext4 rootfs/imgtool.py
	@echo "image: writing the manifest (checksums)..."
	$(Q)$(IMGTOOL) manifest --dir $(IMG_DIR) --name default \
		--rootfs-source "debian:bookworm minbase +python3 (mmdebstrap)" \
		--kernel-info $(IMG_KERNEL)/kernel.json --initrd-info $(IMG_WORK)/initrd.json \
		--hash-cache $(IMG_WORK)/hashes.json
	@echo "image: $(IMG_DIR) ready"
