package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// table is what a show command prints: aligned columns for people, or
// with --json an array of one object per row for scripts, its keys the
// column names in lower case with '-' for spaces, its values typed
// (numbers as numbers, lists as arrays, missing as null).
type table struct {
	cols []string
	rows [][]any
}

func newTable(cols ...string) *table { return &table{cols: cols} }

// add appends a row: one value per column; nil (or a nil pointer) is
// shown as "-".
func (t *table) add(vals ...any) {
	if len(vals) != len(t.cols) {
		panic(fmt.Sprintf("table row of %d values for %d columns", len(vals), len(t.cols)))
	}
	for i, v := range vals {
		vals[i] = deref(v)
	}
	t.rows = append(t.rows, vals)
}

// deref makes a ygot leaf pointer its value, nil if unset.
func deref(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer {
		return v
	}
	if rv.IsNil() {
		return nil
	}
	return rv.Elem().Interface()
}

// cellText is a value as a cell: "-" for none, a list comma-separated.
func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case []string:
		if len(x) == 0 {
			return "-"
		}
		return strings.Join(x, ",")
	case string:
		if x == "" {
			return "-"
		}
		return x
	}
	return fmt.Sprint(v)
}

func isNumber(v any) bool {
	switch v.(type) {
	case int, int64, uint8, uint16, uint32, uint64, float64:
		return true
	}
	return false
}

// write prints the header and rows in columns two spaces apart; a column
// of numbers (and dashes) is right-aligned, as routers print counters.
// The last column is not padded.
func (t *table) write(w io.Writer) error {
	width := make([]int, len(t.cols))
	right := make([]bool, len(t.cols))
	text := make([][]string, len(t.rows))
	numbers := make([]int, len(t.cols)) // numbers in the column, -1 once it has text
	for i, c := range t.cols {
		width[i] = len(c)
	}
	for r, row := range t.rows {
		text[r] = make([]string, len(row))
		for i, v := range row {
			s := cellText(v)
			text[r][i] = s
			width[i] = max(width[i], len(s))
			switch {
			case v == nil || numbers[i] < 0:
			case isNumber(v):
				numbers[i]++
			default:
				numbers[i] = -1
			}
		}
	}
	for i := range right {
		right[i] = numbers[i] > 0
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, s := range cells {
			pad := strings.Repeat(" ", width[i]-len(s))
			switch {
			case right[i]:
				b.WriteString(pad + s)
			case i < len(cells)-1:
				b.WriteString(s + pad)
			default:
				b.WriteString(s)
			}
			if i < len(cells)-1 {
				b.WriteString("  ")
			}
		}
		b.WriteString("\n")
	}
	line(t.cols)
	for _, cells := range text {
		line(cells)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonKey is a column name as a JSON member name.
func jsonKey(col string) string {
	return strings.ReplaceAll(strings.ToLower(col), " ", "-")
}

// writeJSON prints the rows as a JSON array of objects, in row order,
// members in column order.
func (t *table) writeJSON(w io.Writer) error {
	var b strings.Builder
	b.WriteString("[")
	for r, row := range t.rows {
		if r > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  {")
		for i, v := range row {
			if i > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(jsonKey(t.cols[i]))
			val, err := json.Marshal(v)
			if err != nil {
				return err
			}
			b.Write(k)
			b.WriteString(": ")
			b.Write(val)
		}
		b.WriteString("}")
	}
	if len(t.rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := io.WriteString(w, b.String())
	return err
}
