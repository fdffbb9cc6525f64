package bench

import (
	"math"
	"slices"
	"time"
)

// Summary is one figure over repetitions: the median and the spread.
type Summary struct {
	Median, Min, Max float64
	N                int // repetitions that produced a value
}

// Valid says whether the figure was measured at all.
func (s Summary) Valid() bool { return s.N > 0 }

// Summarize takes the median, min and max of vs, skipping NaNs (failed
// repetitions).
func Summarize(vs []float64) Summary {
	var ok []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			ok = append(ok, v)
		}
	}
	if len(ok) == 0 {
		return Summary{}
	}
	slices.Sort(ok)
	return Summary{Median: median(ok), Min: ok[0], Max: ok[len(ok)-1], N: len(ok)}
}

// median of sorted vs.
func median(vs []float64) float64 {
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// Percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method. It sorts ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(math.Ceil(p / 100 * float64(len(ds))))
	rank = min(max(rank, 1), len(ds))
	return ds[rank-1]
}

// micros is d in microseconds.
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// millis is d in milliseconds.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
