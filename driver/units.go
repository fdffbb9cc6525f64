package driver

import "math/bits"

// unitSet is a unit allocator (FreeBSD's unrhdr): a bitmap of the units in
// use, lowest free first. Callers hold Manager.mu.
type unitSet struct {
	words [(MaxUnit + 1 + 63) / 64]uint64
	n     int
}

func (u *unitSet) inUse(unit int) bool {
	return u.words[unit/64]&(1<<(unit%64)) != 0
}

func (u *unitSet) set(unit int) {
	u.words[unit/64] |= 1 << (unit % 64)
	u.n++
}

func (u *unitSet) clear(unit int) {
	if !u.inUse(unit) {
		panic("driver: freeing a free unit")
	}
	u.words[unit/64] &^= 1 << (unit % 64)
	u.n--
}

// lowestFreeFrom returns the lowest free unit >= from, or -1.
func (u *unitSet) lowestFreeFrom(from int) int {
	for from <= MaxUnit {
		w := ^u.words[from/64] >> (from % 64)
		if w != 0 {
			unit := from + bits.TrailingZeros64(w)
			if unit > MaxUnit {
				return -1
			}
			return unit
		}
		from = (from/64 + 1) * 64
	}
	return -1
}
