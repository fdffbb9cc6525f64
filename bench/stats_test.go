package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want Summary
	}{
		{nil, Summary{}},
		{[]float64{math.NaN()}, Summary{}},
		{[]float64{3}, Summary{3, 3, 3, 1}},
		{[]float64{5, 1, 3}, Summary{3, 1, 5, 3}},
		{[]float64{4, 1, math.NaN(), 2, 3}, Summary{2.5, 1, 4, 4}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Microsecond
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Microsecond, 99: 99 * time.Microsecond, 100: 100 * time.Microsecond, 1: time.Microsecond} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestFmtNum(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 0.0312: "0.03", 4.77: "4.77", 74.23: "74.2", 938.4: "938", 2318: "2318",
		17800: "17.8k", 181234: "181k", 999999: "1000k", 1234567: "1.23M",
	} {
		if got := fmtNum(v); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTableWrite(t *testing.T) {
	tb := &Table{Title: "title", Machine: "machine", Columns: []string{"direct", "tundevfs"}}
	tb.Add(Row{Section: "data", Name: "tun 64 B inject", Unit: "pkt/s",
		Cells: []Summary{Summarize([]float64{200000, 180000, 190000}), Summarize([]float64{20000})}, Target: atLeast(0.08, true)})
	tb.Add(Row{Name: "ping-pong p50", Unit: "µs",
		Cells: pair([]float64{5}, []float64{80}), Target: atMost(1.6, true), Note: "n"})
	tb.Add(Row{Name: "RSS per idle device", Unit: "KiB", Cells: one(20), Target: below(16, false)})
	tb.Add(Row{Name: "scaling", Unit: "x", Cells: pair([]float64{1.5}, []float64{2}), NoRatio: true, Target: atLeast(1.8, false)})

	if v := tb.Rows[0].Verdict(); v != "ok" {
		t.Errorf("inject verdict %q, want ok (ratio %v)", v, tb.Rows[0].Ratio(1))
	}
	if v := tb.Rows[1].Verdict(); v != "MISS" {
		t.Errorf("ping-pong verdict %q, want MISS", v)
	}
	if v := tb.Rows[2].Verdict(); v != "MISS" {
		t.Errorf("RSS verdict %q, want MISS", v)
	}
	if r := tb.Rows[3].Ratio(1); !math.IsNaN(r) {
		t.Errorf("NoRatio row has ratio %v", r)
	}
	if v := tb.Rows[3].Verdict(); v != "ok" {
		t.Errorf("scaling verdict %q, want ok", v)
	}

	var b strings.Builder
	if err := tb.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"-- data\n", "190k [180k..200k]", "0.105", ">=0.08 ok", "<=1.6 MISS", "<16 MISS"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing space: %q", l)
		}
	}
	// Columns line up: every row's unit starts where the header's does.
	head := lines[2]
	at := strings.Index(head, "unit")
	for _, l := range lines[3:] {
		if strings.HasPrefix(l, "--") {
			continue
		}
		if r := []rune(l); len(r) <= at || (r[at-1] != ' ' || r[at-2] != ' ') {
			t.Errorf("misaligned: %q", l)
		}
	}
}
