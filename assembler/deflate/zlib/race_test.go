//go:build race

package zlib

// raceEnabled scales the differential inputs down under the race
// detector, which slows the encoder about tenfold.
const raceEnabled = true
