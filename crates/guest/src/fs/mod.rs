//! Guest filesystem facade (NTFS, FAT, ext4 read-only) (to be implemented).
