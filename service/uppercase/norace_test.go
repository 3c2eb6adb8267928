//go:build !race

package uppercase

const raceEnabled = false
