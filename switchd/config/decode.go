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

// toJSON returns the config as JSON: YAML (by extension, or when the content
// does not start with '{') is converted with sigs.k8s.io/yaml.
func toJSON(data []byte, filename string) ([]byte, error) {
	isYAML := false
	switch strings.ToLower(filepath.Ext(filename)) {
	case ".json":
	case ".yaml", ".yml":
		isYAML = true
	default:
		t := bytes.TrimLeft(data, " \t\r\n")
		isYAML = len(t) == 0 || t[0] != '{'
	}
	if !isYAML {
		return data, nil
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	return j, nil
}

// decodeJSON decodes a JSON document into map[string]any, []any, float64,
// string, bool and nil (what ygot's unmarshaller expects), rejecting what
// encoding/json lets through silently: a member name given twice in one
// object (the last would win) and trailing data.
func decodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	v, err := decodeValue(d, data)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected data after the top-level value", position(data, d.InputOffset()))
	}
	return v, nil
}

func decodeValue(d *json.Decoder, data []byte) (any, error) {
	start := d.InputOffset()
	t, err := d.Token()
	if err != nil {
		return nil, syntaxError(data, d, err)
	}
	switch t := t.(type) {
	case json.Delim:
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
				if m[k], err = decodeValue(d, data); err != nil {
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
				v, err := decodeValue(d, data)
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
