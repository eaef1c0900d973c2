//go:build race

package gnu

// raceEnabled scales the differential inputs down under the race
// detector, which slows the encoder about tenfold.
const raceEnabled = true
