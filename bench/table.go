package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Target is a goal from the issue. It is shown next to a row and checked
// against the row's first non-reference column (tundevfs): its ratio to the
// reference when OnRatio, else its value. It is never asserted.
type Target struct {
	Label   string // as printed: ">=0.08", "<1000"
	OnRatio bool
	Met     func(v float64) bool
}

// atLeast, atMost and below build targets.
func atLeast(v float64, onRatio bool) *Target {
	return &Target{Label: ">=" + strconv.FormatFloat(v, 'g', -1, 64), OnRatio: onRatio, Met: func(x float64) bool { return x >= v }}
}

func atMost(v float64, onRatio bool) *Target {
	return &Target{Label: "<=" + strconv.FormatFloat(v, 'g', -1, 64), OnRatio: onRatio, Met: func(x float64) bool { return x <= v }}
}

func below(v float64, onRatio bool) *Target {
	return &Target{Label: "<" + strconv.FormatFloat(v, 'g', -1, 64), OnRatio: onRatio, Met: func(x float64) bool { return x < v }}
}

// Row is one figure of the table.
type Row struct {
	Section string    // printed once, before the first row of a section
	Name    string    // what is measured, and against what if not the direct fd
	Unit    string    // of the cells
	Cells   []Summary // one per Table.Columns; an invalid Summary prints "-"
	Target  *Target
	Note    string // loss, how it was measured
	// NoRatio: the cells are not comparable as a ratio (each path's own
	// scaling, say).
	NoRatio bool
}

// Ratio is the median of column i over the median of the reference
// column, or NaN.
func (r Row) Ratio(i int) float64 {
	if r.NoRatio || i <= 0 || i >= len(r.Cells) || !r.Cells[0].Valid() || !r.Cells[i].Valid() || r.Cells[0].Median == 0 {
		return math.NaN()
	}
	return r.Cells[i].Median / r.Cells[0].Median
}

// Verdict says whether the row meets its target: "ok", "MISS", or "" when
// it has none or the figure is missing.
func (r Row) Verdict() string {
	if r.Target == nil || len(r.Cells) < 2 {
		return ""
	}
	v := r.Cells[1].Median
	if r.Target.OnRatio {
		v = r.Ratio(1)
	} else if !r.Cells[1].Valid() {
		v = math.NaN()
	}
	if math.IsNaN(v) {
		return "n/a"
	}
	if r.Target.Met(v) {
		return "ok"
	}
	return "MISS"
}

// one is a row's cells when only tundevfs has a figure.
func one(v float64) []Summary {
	return []Summary{{}, Summarize([]float64{v})}
}

// pair is a row's cells from a reference and a tundevfs series.
func pair(ref, tdf []float64) []Summary {
	return []Summary{Summarize(ref), Summarize(tdf)}
}

// Table is the suite's result.
type Table struct {
	Title   string
	Machine string
	// Columns names the paths; Columns[0] is the reference the ratios are
	// taken against.
	Columns []string
	Rows    []Row
}

// Add appends a row.
func (t *Table) Add(r Row) { t.Rows = append(t.Rows, r) }

// Write prints the table as aligned text.
func (t *Table) Write(w io.Writer) error {
	head := []string{"figure", "unit"}
	for i, c := range t.Columns {
		head = append(head, c)
		if i > 0 {
			head = append(head, "ratio")
		}
	}
	head = append(head, "target", "note")
	lines := [][]string{head}
	sections := map[int]string{}
	for _, r := range t.Rows {
		if r.Section != "" {
			sections[len(lines)] = r.Section
		}
		line := []string{r.Name, r.Unit}
		for i := range t.Columns {
			var c Summary
			if i < len(r.Cells) {
				c = r.Cells[i]
			}
			line = append(line, fmtSummary(c))
			if i > 0 {
				line = append(line, fmtRatio(r.Ratio(i)))
			}
		}
		target := ""
		if r.Target != nil {
			target = r.Target.Label + " " + r.Verdict()
		}
		line = append(line, target, r.Note)
		lines = append(lines, line)
	}
	widths := make([]int, len(head))
	for _, l := range lines {
		for i, f := range l {
			widths[i] = max(widths[i], utf8.RuneCountInString(f))
		}
	}
	var b strings.Builder
	if t.Title != "" {
		fmt.Fprintf(&b, "%s\n", t.Title)
	}
	if t.Machine != "" {
		fmt.Fprintf(&b, "%s\n", t.Machine)
	}
	for n, l := range lines {
		if s, ok := sections[n]; ok {
			fmt.Fprintf(&b, "-- %s\n", s)
		}
		var line strings.Builder
		for i, f := range l {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(f))
			if i >= 2 && i < len(l)-2 {
				line.WriteString(pad + f) // numbers: right-aligned
			} else {
				line.WriteString(f + pad)
			}
			line.WriteString("  ")
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtSummary(s Summary) string {
	if !s.Valid() {
		return "-"
	}
	if s.N == 1 || s.Min == s.Max {
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s [%s..%s]", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v >= 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// fmtNum prints three significant digits, with k and M above 10000.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZeros(fmt.Sprintf("%.3g", v/1e6)) + "M"
	case a >= 1e4:
		return trimZeros(fmt.Sprintf("%.3g", v/1e3)) + "k"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.2f", v)
}

// trimZeros turns %g's exponent form back into plain digits when short.
func trimZeros(s string) string {
	if strings.ContainsAny(s, "e") {
		var f float64
		fmt.Sscan(s, &f)
		return fmt.Sprintf("%.0f", f)
	}
	return s
}
