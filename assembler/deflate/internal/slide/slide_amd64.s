//go:build !purego

#include "textflag.h"

// func downSSE2(t []uint16)
TEXT ·downSSE2(SB), NOSPLIT, $0-24
	MOVQ t_base+0(FP), SI
	MOVQ t_len+8(FP), CX
	SHRQ $5, CX
	JZ   done
	MOVL $0x80008000, AX
	MOVD AX, X4
	PSHUFD $0, X4, X4

loop:
	MOVOU 0(SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	PSUBUSW X4, X0
	PSUBUSW X4, X1
	PSUBUSW X4, X2
	PSUBUSW X4, X3
	MOVOU X0, 0(SI)
	MOVOU X1, 16(SI)
	MOVOU X2, 32(SI)
	MOVOU X3, 48(SI)
	ADDQ $64, SI
	DECQ CX
	JNZ  loop

done:
	RET
