//go:build !race

package gnu

const raceEnabled = false
