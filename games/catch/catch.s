; =============================================================================
; Catch: netgym's test game (NES, mapper 0 / NROM-128, 16 KiB PRG, 8 KiB CHR)
; Build: ./build.sh (ca65 + ld65 from Debian's cc65), gives catch.nes.
;
; Move the white square (player) with the d-pad, 2 px a frame, inside the
; grey border. Touch the green square (target): score + 1 and the target jumps
; to a new pseudo-random place. Touch the red square (hazard, which bounces
; diagonally, 1 px on each axis every other frame, a quarter of the player's
; speed): game over, the backdrop turns red and everything freezes until reset
; or power-on. The score (0-255, wraps) is shown top left in decimal.
;
; Made so that a small agent learns it on a CPU in minutes: besides the
; absolute positions, the game keeps where the target and the hazard are seen
; from the player ($10-$13, 128 = same place), which is what a policy needs.
;
; Play starts at power-on: no title screen, no Start press. Game logic runs
; once a frame in the NMI handler, from the first NMI (in FCEUX, the 7th frame
; after power-on: the reset code first waits for two vblanks). A joypad state
; set for a frame is read in that same frame, and the picture of that frame
; shows the RAM state after it.
;
; Randomness: a 16-bit Galois LFSR (rng_hi:rng_lo, polynomial $0039, seed
; $ACE1 at power-on), clocked 8 times every logic frame and 16 more times for
; every target draw; nothing else feeds it, so the game is a pure
; function of the frame count and the joypad. Until the first frame with a
; d-pad button held (armed = 0), the target is re-drawn every frame; the first
; d-pad press freezes it in place (armed = 1). So the number of idle frames
; before the agent first moves (netgym's random no-ops) picks the first target
; and, through the LFSR, every later one.
;
; Every rectangle is 8x8. Two overlap when |dx| < 8 and |dy| < 8.
; Positions are the top-left pixel on the 256x240 screen.
;
; RAM map (all fixed, zero page):
;   addr  name        meaning                                      range
;   $00   player_x    player left edge                             16..232
;   $01   player_y    player top edge                              32..208
;   $02   target_x    target left edge                             16..232
;   $03   target_y    target top edge                              32..208
;   $04   hazard_x    hazard left edge                             16..232
;   $05   hazard_y    hazard top edge                              32..208
;   $06   hazard_dx   hazard x velocity, px/frame                  $01 (+1) or $FF (-1)
;   $07   hazard_dy   hazard y velocity, px/frame                  $01 (+1) or $FF (-1)
;   $08   score       targets caught (wraps 255 -> 0)              0..255
;   $09   game_over   1 once the hazard touched the player         0 or 1
;   $0A   frame_lo    logic frames since power-on, low byte        0..255
;   $0B   frame_hi    logic frames since power-on, high byte       0..255
;                     (the counter stops at game over)
;   $0C   buttons     joypad 1 as read this frame                  bit7..0 = A B Select Start Up Down Left Right
;   $0D   armed       0 until the first d-pad press, then 1        0 or 1
;   $0E   rng_lo      LFSR low byte                                0..255
;   $0F   rng_hi      LFSR high byte (rng never 0)                 0..255
;   $10   to_target_x 128 + (target_x - player_x) / 2, rounded down  20..236
;   $11   to_target_y 128 + (target_y - player_y) / 2, rounded down  40..216
;   $12   to_hazard_x 128 + (hazard_x - player_x) / 2, rounded down  20..236
;   $13   to_hazard_y 128 + (hazard_y - player_y) / 2, rounded down  40..216
;                     ($10-$13 are updated at the end of every logic frame)
;   $14-$1F           scratch for the code, not game state
;   $0200-$02FF       OAM shadow (sprite 0 player, 1 target, 2 hazard)
; =============================================================================

; ---- hardware --------------------------------------------------------------
PPUCTRL   = $2000
PPUMASK   = $2001
PPUSTATUS = $2002
OAMADDR   = $2003
PPUSCROLL = $2005
PPUADDR   = $2006
PPUDATA   = $2007
OAMDMA    = $4014
JOY1      = $4016
APUFRAME  = $4017
DMCFREQ   = $4010

; ---- game variables (see the RAM map above) -------------------------------
player_x  = $00
player_y  = $01
target_x  = $02
target_y  = $03
hazard_x  = $04
hazard_y  = $05
hazard_dx = $06
hazard_dy = $07
score     = $08
game_over = $09
frame_lo  = $0A
frame_hi  = $0B
buttons   = $0C
armed     = $0D
rng_lo    = $0E
rng_hi    = $0F
to_target_x = $10
to_target_y = $11
to_hazard_x = $12
to_hazard_y = $13
; scratch
digits    = $14          ; 3 bytes: score as tile numbers, hundreds first
backdrop  = $17          ; colour written to $3F00 in the next vblank
t0        = $18          ; overlap() operands: (t0,t1) vs (t2,t3)
t1        = $19
t2        = $1A
t3        = $1B
tries     = $1C          ; place_target attempts left

OAM       = $0200

; ---- constants -------------------------------------------------------------
MIN_X      = 16
MAX_X      = 232
MIN_Y      = 32
MAX_Y      = 208
SIZE       = 8
SPEED      = 2           ; player px per frame
PLAYER_X0  = 64            ; bottom left, away from the hazard's first sweep
PLAYER_Y0  = 176
HAZARD_X0  = MIN_X
HAZARD_Y0  = MIN_Y
RNG_SEED   = $ACE1
MAX_TRIES  = 2           ; target draws per placement (bounds the frame time)

BTN_A      = $80
BTN_B      = $40
BTN_SELECT = $20
BTN_START  = $10
BTN_UP     = $08
BTN_DOWN   = $04
BTN_LEFT   = $02
BTN_RIGHT  = $01
BTN_DPAD   = BTN_UP | BTN_DOWN | BTN_LEFT | BTN_RIGHT

TILE_BLANK = $00
TILE_SOLID = $01
TILE_ZERO  = $30         ; digits 0-9 are tiles $30-$39 (ASCII)

COL_BG      = $02        ; backdrop while playing: dark blue
COL_BG_OVER = $06        ; backdrop after game over: dark red

; ---- iNES header -----------------------------------------------------------
.segment "HEADER"
    .byte "NES", $1A
    .byte 1                 ; 1 x 16 KiB PRG ROM
    .byte 1                 ; 1 x 8 KiB CHR ROM
    .byte $00               ; mapper 0, horizontal mirroring, no battery
    .byte $00               ; mapper 0
    .res 8, $00

; ---- code ------------------------------------------------------------------
.segment "CODE"

reset:
    sei
    cld
    ldx #$40
    stx APUFRAME            ; no APU frame IRQ
    ldx #$FF
    txs
    inx                     ; X = 0
    stx PPUCTRL             ; no NMI
    stx PPUMASK             ; rendering off
    stx DMCFREQ             ; no DMC IRQ
    bit PPUSTATUS
@vblank1:
    bit PPUSTATUS
    bpl @vblank1

    lda #0                  ; clear all RAM but the OAM shadow
@clear:
    sta $0000,x
    sta $0100,x
    sta $0300,x
    sta $0400,x
    sta $0500,x
    sta $0600,x
    sta $0700,x
    inx
    bne @clear
    lda #$FF                ; hide all 64 sprites
@hide:
    sta OAM,x
    inx
    bne @hide

@vblank2:
    bit PPUSTATUS
    bpl @vblank2

    jsr load_palettes
    jsr draw_field
    jsr init_game
    jsr draw

    bit PPUSTATUS           ; start rendering and NMIs at the next vblank
@vblank3:
    bit PPUSTATUS
    bpl @vblank3
    lda #0
    sta OAMADDR
    lda #>OAM
    sta OAMDMA
    lda #0
    sta PPUSCROLL
    sta PPUSCROLL
    lda #%00011110          ; show background and sprites, left 8 px too
    sta PPUMASK
    lda #%10000000          ; NMI on; sprites and background use tiles at $0000
    sta PPUCTRL
forever:
    jmp forever

; Everything happens here, once a frame, inside vblank: one frame of game
; logic (it reads the joypad), then the sprites, score and backdrop of the
; new state go to the PPU, so the picture rendered right after shows the
; same state as RAM (no one-frame lag between RAM and screen). Measured in
; FCEUX: 1,200-1,350 CPU cycles from NMI entry to nmi_done, about +300 per
; target draw, before relate and the hazard's even-frame test were added
; (counted: about 70 cycles more), so at most about 2,100 of the 2,273 cycles
; of vblank (at most one place_target call a frame, at most MAX_TRIES draws).
nmi:
    pha
    txa
    pha
    tya
    pha

    jsr update
    jsr draw

    lda #0
    sta OAMADDR
    lda #>OAM
    sta OAMDMA
    bit PPUSTATUS
    lda #$20                ; score at row 1, columns 2-4 ($2022)
    sta PPUADDR
    lda #$22
    sta PPUADDR
    lda digits
    sta PPUDATA
    lda digits+1
    sta PPUDATA
    lda digits+2
    sta PPUDATA
    lda #$3F                ; backdrop colour
    sta PPUADDR
    lda #$00
    sta PPUADDR
    lda backdrop
    sta PPUDATA
    lda #$00                ; leave the address off the palette
    sta PPUADDR
    sta PPUADDR
    sta PPUSCROLL
    sta PPUSCROLL
    lda #%10000000
    sta PPUCTRL
nmi_done:                   ; vblank work ends here
    pla
    tay
    pla
    tax
    pla
irq:
    rti

; Power-on state of the game.
init_game:
    lda #PLAYER_X0
    sta player_x
    lda #PLAYER_Y0
    sta player_y
    lda #HAZARD_X0
    sta hazard_x
    lda #HAZARD_Y0
    sta hazard_y
    lda #1
    sta hazard_dx
    sta hazard_dy
    lda #<RNG_SEED
    sta rng_lo
    lda #>RNG_SEED
    sta rng_hi
    lda #0
    sta score
    sta game_over
    sta frame_lo
    sta frame_hi
    sta buttons
    sta armed
    jsr place_target
    jmp relate

; One frame of game logic.
update:
    lda game_over
    beq @alive
    rts                     ; frozen until reset
@alive:
    jsr prng                ; the LFSR ticks every frame
    inc frame_lo
    bne @counted
    inc frame_hi
@counted:
    jsr read_pad

    lda armed               ; before the first d-pad press the target rerolls
    bne @armed
    lda buttons
    and #BTN_DPAD
    beq @reroll
    lda #1
    sta armed
    bne @armed
@reroll:
    jsr place_target
@armed:
    jsr move_player
    lda frame_lo            ; the hazard moves on even frames only
    and #1
    bne @hazard_still
    jsr move_hazard
@hazard_still:

    lda player_x            ; caught the target?
    sta t0
    lda player_y
    sta t1
    lda target_x
    sta t2
    lda target_y
    sta t3
    jsr overlap
    bcc @no_catch
    inc score
    jsr place_target
@no_catch:
    lda player_x            ; hit by the hazard?
    sta t0
    lda player_y
    sta t1
    lda hazard_x
    sta t2
    lda hazard_y
    sta t3
    jsr overlap
    bcc @done
    lda #1
    sta game_over
@done:
    jmp relate

; Where the target and the hazard are, seen from the player:
; to_X = 128 + (X - player) / 2 (rounded down), so 20..236, 128 = same place.
; The subtraction's carry is bit 8 of the 9-bit difference, inverted, which
; is exactly bit 7 of the biased half: ROR puts it there.
relate:
    sec
    lda target_x
    sbc player_x
    ror a
    sta to_target_x
    sec
    lda target_y
    sbc player_y
    ror a
    sta to_target_y
    sec
    lda hazard_x
    sbc player_x
    ror a
    sta to_hazard_x
    sec
    lda hazard_y
    sbc player_y
    ror a
    sta to_hazard_y
    rts

; buttons = joypad 1, bit 7..0 = A B Select Start Up Down Left Right.
read_pad:
    lda #1
    sta JOY1
    sta buttons             ; the 1 comes out in carry after 8 reads
    lsr a
    sta JOY1
@bit:
    lda JOY1
    lsr a
    rol buttons
    bcc @bit
    rts

move_player:
    lda buttons
    and #BTN_UP
    beq @not_up
    lda player_y
    sec
    sbc #SPEED
    sta player_y
@not_up:
    lda buttons
    and #BTN_DOWN
    beq @not_down
    lda player_y
    clc
    adc #SPEED
    sta player_y
@not_down:
    lda buttons
    and #BTN_LEFT
    beq @not_left
    lda player_x
    sec
    sbc #SPEED
    sta player_x
@not_left:
    lda buttons
    and #BTN_RIGHT
    beq @not_right
    lda player_x
    clc
    adc #SPEED
    sta player_x
@not_right:
    lda player_x            ; clamp (no wrap: 16-2 >= 0 and 232+2 < 256)
    cmp #MIN_X
    bcs @x_ge_min
    lda #MIN_X
@x_ge_min:
    cmp #MAX_X+1
    bcc @x_le_max
    lda #MAX_X
@x_le_max:
    sta player_x
    lda player_y
    cmp #MIN_Y
    bcs @y_ge_min
    lda #MIN_Y
@y_ge_min:
    cmp #MAX_Y+1
    bcc @y_le_max
    lda #MAX_Y
@y_le_max:
    sta player_y
    rts

; Diagonal bounce off the playfield edges.
move_hazard:
    lda hazard_x
    clc
    adc hazard_dx
    cmp #MIN_X+1
    bcs @x_not_low
    lda #1
    sta hazard_dx
    lda #MIN_X
    bne @x_store
@x_not_low:
    cmp #MAX_X
    bcc @x_store
    ldx #$FF
    stx hazard_dx
    lda #MAX_X
@x_store:
    sta hazard_x
    lda hazard_y
    clc
    adc hazard_dy
    cmp #MIN_Y+1
    bcs @y_not_low
    lda #1
    sta hazard_dy
    lda #MIN_Y
    bne @y_store
@y_not_low:
    cmp #MAX_Y
    bcc @y_store
    ldx #$FF
    stx hazard_dy
    lda #MAX_Y
@y_store:
    sta hazard_y
    rts

; New target position from the LFSR: x = 16 + (r1 * 217) >> 8,
; y = 32 + (r2 * 177) >> 8 (by table). If it touches the player or the hazard
; it is drawn once more; if that one touches too, it moves 108 px sideways
; (x < 124: +108, else -108), away from whatever it touched. Bounded, so the
; NMI always ends inside vblank.
place_target:
    lda #MAX_TRIES
    sta tries
@try:
    jsr prng
    tay
    lda target_x_table,y
    sta target_x
    jsr prng
    tay
    lda target_y_table,y
    sta target_y
    jsr target_touches
    bcc @done
    dec tries
    bne @try
    lda target_x
    cmp #MIN_X+108
    bcs @left
    adc #108                ; carry clear
    bne @store              ; always
@left:
    sbc #108                ; carry set
@store:
    sta target_x
@done:
    rts

; Carry set when the target touches the player or the hazard.
target_touches:
    lda target_x
    sta t0
    lda target_y
    sta t1
    lda player_x
    sta t2
    lda player_y
    sta t3
    jsr overlap
    bcs @yes
    lda hazard_x
    sta t2
    lda hazard_y
    sta t3
    jmp overlap
@yes:
    rts

; Carry set when the 8x8 boxes at (t0,t1) and (t2,t3) overlap.
overlap:
    lda t0
    sec
    sbc t2
    bcs @dx_pos
    eor #$FF                ; carry is clear: A = t2 - t0
    adc #1
@dx_pos:
    cmp #SIZE
    bcs @apart
    lda t1
    sec
    sbc t3
    bcs @dy_pos
    eor #$FF
    adc #1
@dy_pos:
    cmp #SIZE
    bcs @apart
    sec
    rts
@apart:
    clc
    rts

; Clock the 16-bit Galois LFSR (taps $0039) 8 times at once; A = rng_lo.
; Same result as 8 rounds of "asl rng_lo / rol rng_hi / bcc + / eor #$39 into
; rng_lo" (nesdev wiki, galois16o; checked equal on all 65,536 states).
; Clobbers Y.
prng:
    lda rng_hi
    tay
    lsr a
    lsr a
    lsr a
    sta rng_hi
    lsr a
    eor rng_hi
    lsr a
    eor rng_hi
    eor rng_lo
    sta rng_hi
    tya
    sta rng_lo
    asl a
    eor rng_lo
    asl a
    eor rng_lo
    asl a
    asl a
    asl a
    eor rng_lo
    sta rng_lo
    rts

; Sprites, score digits and backdrop colour for the next vblank.
draw:
    ldx player_y            ; sprite 0: player, palette 0
    dex                     ; sprites show one line below their OAM Y
    stx OAM+0
    lda #TILE_SOLID
    sta OAM+1
    lda #$00
    sta OAM+2
    lda player_x
    sta OAM+3
    ldx target_y            ; sprite 1: target, palette 1
    dex
    stx OAM+4
    lda #TILE_SOLID
    sta OAM+5
    lda #$01
    sta OAM+6
    lda target_x
    sta OAM+7
    ldx hazard_y            ; sprite 2: hazard, palette 2
    dex
    stx OAM+8
    lda #TILE_SOLID
    sta OAM+9
    lda #$02
    sta OAM+10
    lda hazard_x
    sta OAM+11

    lda score
    ldx #TILE_ZERO
@hundreds:
    cmp #100
    bcc @hundreds_done
    sbc #100
    inx
    bne @hundreds
@hundreds_done:
    stx digits
    ldx #TILE_ZERO
@tens:
    cmp #10
    bcc @tens_done
    sbc #10
    inx
    bne @tens
@tens_done:
    stx digits+1
    clc
    adc #TILE_ZERO
    sta digits+2

    lda #COL_BG
    ldx game_over
    beq @colour
    lda #COL_BG_OVER
@colour:
    sta backdrop
    rts

load_palettes:
    bit PPUSTATUS
    lda #$3F
    sta PPUADDR
    lda #$00
    sta PPUADDR
    ldx #0
@copy:
    lda palettes,x
    sta PPUDATA
    inx
    cpx #32
    bne @copy
    rts

; Nametable 0: blank, with a grey border around the playfield
; (tiles: rows 3 and 27, columns 1 and 30; the field is x 16-239, y 32-215).
draw_field:
    lda #0
    sta PPUCTRL             ; +1 increments
    bit PPUSTATUS
    lda #$20
    sta PPUADDR
    lda #$00
    sta PPUADDR
    ldy #4                  ; 4 x 256 bytes: tiles and attributes
    ldx #0
    lda #TILE_BLANK
@blank:
    sta PPUDATA
    inx
    bne @blank
    dey
    bne @blank

    lda #$20                ; top row, columns 1-30
    sta PPUADDR
    lda #$61
    sta PPUADDR
    jsr row30
    lda #$23                ; bottom row, columns 1-30
    sta PPUADDR
    lda #$61
    sta PPUADDR
    jsr row30

    lda #%00000100          ; +32 increments: columns
    sta PPUCTRL
    lda #$20                ; left column, rows 4-26
    sta PPUADDR
    lda #$81
    sta PPUADDR
    jsr col23
    lda #$20                ; right column, rows 4-26
    sta PPUADDR
    lda #$9E
    sta PPUADDR
    jsr col23
    lda #0
    sta PPUCTRL
    rts

row30:
    ldx #30
    lda #TILE_SOLID
@put:
    sta PPUDATA
    dex
    bne @put
    rts

col23:
    ldx #23
    lda #TILE_SOLID
@put:
    sta PPUDATA
    dex
    bne @put
    rts

.segment "RODATA"
; random byte r -> target position: MIN + (r * field size) >> 8
target_x_table:
    .repeat 256, I
        .byte MIN_X + (I * (MAX_X - MIN_X + 1)) / 256
    .endrepeat
target_y_table:
    .repeat 256, I
        .byte MIN_Y + (I * (MAX_Y - MIN_Y + 1)) / 256
    .endrepeat

palettes:
    ; background: backdrop, border grey, -, digits white
    .byte COL_BG, $10, $20, $30
    .byte COL_BG, $10, $20, $30
    .byte COL_BG, $10, $20, $30
    .byte COL_BG, $10, $20, $30
    ; sprites: 0 player white, 1 target green, 2 hazard red, 3 unused
    .byte COL_BG, $30, $30, $30
    .byte COL_BG, $2A, $2A, $2A
    .byte COL_BG, $16, $16, $16
    .byte COL_BG, $30, $30, $30

.segment "VECTORS"
    .word nmi, reset, irq

; ---- CHR ROM: tile 0 blank, tile 1 solid (colour 1), $30-$39 digits -------
.segment "CHARS"
    .res 16, $00                        ; $00 blank
    .res 8, $FF                         ; $01 solid, colour 1
    .res 8, $00
    .res 16 * (TILE_ZERO - 2), $00      ; $02-$2F unused

.macro glyph r0, r1, r2, r3, r4, r5, r6  ; 5x7 digit in colour 3
    .byte r0, r1, r2, r3, r4, r5, r6, 0
    .byte r0, r1, r2, r3, r4, r5, r6, 0
.endmacro
    glyph %00111000,%01000100,%01001100,%01010100,%01100100,%01000100,%00111000 ; 0
    glyph %00010000,%00110000,%00010000,%00010000,%00010000,%00010000,%00111000 ; 1
    glyph %00111000,%01000100,%00000100,%00001000,%00010000,%00100000,%01111100 ; 2
    glyph %01111100,%00001000,%00010000,%00001000,%00000100,%01000100,%00111000 ; 3
    glyph %00001000,%00011000,%00101000,%01001000,%01111100,%00001000,%00001000 ; 4
    glyph %01111100,%01000000,%01111000,%00000100,%00000100,%01000100,%00111000 ; 5
    glyph %00011000,%00100000,%01000000,%01111000,%01000100,%01000100,%00111000 ; 6
    glyph %01111100,%00000100,%00001000,%00010000,%00100000,%00100000,%00100000 ; 7
    glyph %00111000,%01000100,%01000100,%00111000,%01000100,%01000100,%00111000 ; 8
    glyph %00111000,%01000100,%01000100,%00111100,%00000100,%00001000,%00110000 ; 9
