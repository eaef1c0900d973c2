//go:build !amd64 || purego

package slide

// Down subtracts Half from every entry of t, saturating at 0.
func Down(t []uint16) { down(t) }
