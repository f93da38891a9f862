package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// isYAML tells the format: by extension, else YAML unless the content
// starts with '{'.
func isYAML(data []byte, filename string) bool {
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".json":
		return false
	case ".yaml", ".yml":
		return true
	}
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) == 0 || t[0] != '{'
}

// toJSON returns the config as JSON: YAML is converted with
// sigs.k8s.io/yaml.
func toJSON(data []byte, isYAML bool) ([]byte, error) {
	if !isYAML {
		return data, nil
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	return j, nil
}

// Bounds on what is decoded. The decoders recurse once per level of
// nesting and build the whole tree in memory, so a hostile file (10 MB of
// '[') would otherwise grow the stack until Go aborts the process, which no
// recover can catch: a reload must not be able to kill the daemon. The
// deepest node of the OpenConfig tree switchd serves is about 25 levels of
// JSON objects and arrays down, and a config of 50,000 aggregates is about
// 10 MB.
const (
	// MaxFileSize is the largest config file accepted, in bytes.
	MaxFileSize = 64 << 20
	// MaxDepth is how deeply JSON objects and arrays (YAML mappings and
	// sequences) may nest.
	MaxDepth = 64
)

// checkSize refuses data over MaxFileSize.
func checkSize(n int64) error {
	if n > MaxFileSize {
		return fmt.Errorf("file is %d bytes, more than the %d (%d MiB) a config may have", n, int64(MaxFileSize), MaxFileSize>>20)
	}
	return nil
}

// checkJSONDepth scans JSON text, without decoding it, for objects and
// arrays nested more than MaxDepth deep. It only tracks strings and
// brackets, in constant memory; syntax errors are left to the decoder.
func checkJSONDepth(data []byte) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			if depth++; depth > MaxDepth {
				return fmt.Errorf("%s: objects and arrays nested more than %d deep", position(data, int64(i)), MaxDepth)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}

// decodeJSON decodes a JSON document into map[string]any, []any, float64,
// string, bool and nil (what ygot's unmarshaller expects), rejecting what
// encoding/json lets through silently: a member name given twice in one
// object (the last would win) and trailing data. Nesting is bounded by
// MaxDepth; a document too deep is refused naming the path that is.
func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	v, err := decodeValue(d, data, nil)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected data after the top-level value", position(data, d.InputOffset()))
	}
	return v, nil
}

// decodeValue decodes one value; at is the member names and list indexes
// leading to it.
func decodeValue(d *json.Decoder, data []byte, at []string) (any, error) {
	start := d.InputOffset()
	t, err := d.Token()
	if err != nil {
		return nil, syntaxError(data, d, err)
	}
	switch t := t.(type) {
	case json.Delim:
		// Checked here too, not only by checkJSONDepth, because YAML
		// reaches this decoder converted to JSON.
		if len(at) >= MaxDepth {
			return nil, fmt.Errorf("objects and arrays nested more than %d deep, at %s", MaxDepth, depthPath(at))
		}
		switch t {
		case '{':
			m := map[string]any{}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, syntaxError(data, d, err)
				}
				k := kt.(string)
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("%s: member %q given twice in one object", position(data, d.InputOffset()), k)
				}
				if m[k], err = decodeValue(d, data, append(at, k)); err != nil {
					return nil, err
				}
			}
			if _, err := d.Token(); err != nil {
				return nil, syntaxError(data, d, err)
			}
			return m, nil
		case '[':
			a := []any{}
			for d.More() {
				v, err := decodeValue(d, data, append(at, fmt.Sprint(len(a))))
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, syntaxError(data, d, err)
			}
			return a, nil
		}
		return nil, fmt.Errorf("%s: unexpected %q", position(data, start), t)
	default:
		return t, nil
	}
}

// depthPath shows where nesting went too deep: the first members and the
// last, enough to find the place in the file.
func depthPath(at []string) string {
	if len(at) > 12 {
		at = append(append(at[:6:6], "…"), at[len(at)-5:]...)
	}
	return "/" + strings.Join(at, "/")
}

func syntaxError(data []byte, d *json.Decoder, err error) error {
	off := d.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: %v", position(data, off), err)
}

// position turns a byte offset into "line L column C" (1-based).
func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("line %d column %d", line, col)
}
