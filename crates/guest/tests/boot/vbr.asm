; Test volume boot record behaving like NT-era boot code on its CHS path.
;
; Loaded at 0000:7C00 by an MBR boot program with DL = BIOS drive.
; 1. INT 13h AH=08: print the BIOS geometry on COM1 as
;    "GEOM <max cyl>/<max head>/<spt>" (raw AH=08 values: 0-based
;    cylinder and head maxima).
; 2. LBA = hidden sectors (BPB 0x1C) + TARGET (dword at 0x1F4); CHS from
;    the BPB's sectors per track (0x18) and heads (0x1A), exactly as the
;    NT boot code computes it; print "CHS <c>/<h>/<s>".
; 3. INT 13h AH=02 one sector to 0000:8000; the sector must start with
;    "H2KVMTGT".
; 4. Print "BOOT OK" or "A disk read error occurred" on COM1 and leave
;    QEMU through isa-debug-exit (port 0xF4): 0x10 = ok, 0x11 = failure.
;
; The BPB is an NTFS one (jump, OEM id, BPB up to 0x54) so the sector
; looks like what mkntfs writes; test builders patch its fields.
; Build: nasm -f bin -o vbr.bin vbr.asm

bits 16
org 0x7c00

        jmp short start             ; EB 52 90 like NTFS
        nop
oem:    db 'NTFS    '               ; 0x03
bps:    dw 512                      ; 0x0B bytes per sector
spc:    db 8                        ; 0x0D sectors per cluster
        dw 0                        ; 0x0E reserved sectors
        db 0, 0, 0                  ; 0x10 FATs, root entries
        dw 0                        ; 0x13 total sectors (16)
        db 0xF8                     ; 0x15 media descriptor
        dw 0                        ; 0x16 sectors per FAT
spt:    dw 63                       ; 0x18 sectors per track
heads:  dw 255                      ; 0x1A heads
hidden: dd 63                       ; 0x1C hidden sectors
        dd 0                        ; 0x20
        db 0x80, 0, 0x80, 0         ; 0x24 drive number etc.
total:  dq 0                        ; 0x28 total sectors
        dq 4                        ; 0x30 $MFT cluster
        dq 2                        ; 0x38 $MFTMirr cluster
        db 0xF6, 0, 0, 0            ; 0x40 clusters per MFT record (-10: 1024 bytes)
        db 1, 0, 0, 0               ; 0x44 clusters per index block
        dq 0x4832_4B56_4D54_4553    ; 0x48 volume serial
        dd 0                        ; 0x50 checksum

start:                              ; 0x54
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7c00
        sti
        cld
        mov [drive], dl

        ; --- INT 13h AH=08: report the BIOS geometry ---
        mov ah, 0x08
        xor di, di
        int 0x13
        push cx
        push dx
        mov si, msg_geom
        call puts
        pop dx
        pop cx
        push dx
        mov al, cl                  ; cylinder = CH | (CL[7:6] << 8)
        shr al, 6
        mov ah, al
        mov al, ch
        push cx
        call putdec
        call slash
        pop cx
        pop dx
        push cx
        movzx ax, dh                ; max head
        call putdec
        call slash
        pop cx
        movzx ax, cl
        and al, 0x3f                ; sectors per track
        call putdec
        call crlf

        ; --- LBA -> CHS with the BPB geometry ---
        mov eax, [hidden]
        add eax, [target]
        xor edx, edx
        movzx ebx, word [spt]
        div ebx                     ; eax = track, dx = sector - 1
        inc dx
        mov [s_sec], dx
        xor edx, edx
        movzx ebx, word [heads]
        div ebx                     ; eax = cylinder, dx = head
        mov [s_head], dx
        mov [s_cyl], ax
        mov si, msg_chs
        call puts
        mov ax, [s_cyl]
        call putdec
        call slash
        mov ax, [s_head]
        call putdec
        call slash
        mov ax, [s_sec]
        call putdec
        call crlf

        ; --- INT 13h AH=02 ---
        mov ax, [s_cyl]
        cmp ax, 1023
        ja fail
        mov ch, al
        shl ah, 6
        mov cl, [s_sec]
        or cl, ah
        mov dh, [s_head]
        mov dl, [drive]
        mov bx, 0x8000
        mov ax, 0x0201
        int 0x13
        jc fail
        mov si, 0x8000
        mov di, marker
        mov cx, 8
        repe cmpsb
        jne fail
        mov si, msg_ok
        call puts
        mov al, 0x10
        jmp exit
fail:
        mov si, msg_err
        call puts
        mov al, 0x11
exit:
        mov dx, 0xf4
        out dx, al
.halt:  hlt
        jmp .halt

; print the NUL-terminated string at SI on COM1
puts:
        lodsb
        test al, al
        jz .done
        call putc
        jmp puts
.done:  ret

putc:
        push dx
        mov dx, 0x3f8
        out dx, al
        pop dx
        ret

slash:  mov al, '/'
        jmp putc

crlf:   mov si, msg_crlf
        jmp puts

; print AX in decimal
putdec:
        xor cx, cx
        mov bx, 10
.div:   xor dx, dx
        div bx
        push dx
        inc cx
        test ax, ax
        jnz .div
.out:   pop ax
        add al, '0'
        call putc
        loop .out
        ret

msg_geom: db 'GEOM ', 0
msg_chs:  db 'CHS ', 0
msg_ok:   db 'BOOT OK', 13, 10, 0
msg_err:  db 'A disk read error occurred', 13, 10, 0
msg_crlf: db 13, 10, 0
marker:   db 'H2KVMTGT'

drive:  equ 0x7e00
s_cyl:  equ 0x7e02
s_head: equ 0x7e04
s_sec:  equ 0x7e06

        times 0x1F4 - ($ - $$) db 0
target: dd 16                       ; 0x1F4 sector (relative to the volume) to read
        times 0x1FE - ($ - $$) db 0
        dw 0xAA55
