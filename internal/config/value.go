package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// parseText sets the scalar v from its text, the same way for the file and
// the environment.
func parseText(v reflect.Value, s string) error {
	switch t := v.Type(); {
	case t == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (write e.g. 30s, 2m, 1h)", s)
		}
		v.SetInt(int64(d))
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	case t.Kind() == reflect.String:
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean (write true or false)", s)
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(n)
	default:
		return fmt.Errorf("unsupported setting type %s", t)
	}
	return nil
}

// parseList sets the list v from comma-separated text; empty text is the
// empty list.
func parseList(v reflect.Value, s string) error {
	var items []string
	if strings.TrimSpace(s) != "" {
		items = strings.Split(s, ",")
	}
	list := reflect.MakeSlice(v.Type(), len(items), len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			return fmt.Errorf("list item %d is empty", i+1)
		}
		if err := parseText(list.Index(i), item); err != nil {
			return err
		}
	}
	v.Set(normalizeList(list))
	return nil
}

// normalizeList returns nil for an empty list, so that "no items" has one
// representation whether it came from the defaults, the file or the
// environment.
func normalizeList(list reflect.Value) reflect.Value {
	if list.Len() == 0 {
		return reflect.Zero(list.Type())
	}
	return list
}

// formatValue writes v as the environment would: parseText (or parseList)
// of the result gives back v.
func formatValue(v reflect.Value) string {
	t := v.Type()
	switch {
	case isList(t):
		items := make([]string, v.Len())
		for i := range items {
			items[i] = formatValue(v.Index(i))
		}
		return strings.Join(items, ",")
	case t == durationType:
		return time.Duration(v.Int()).String()
	case t.Implements(reflect.TypeFor[encoding.TextMarshaler]()):
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		return string(b)
	case t.Kind() == reflect.String:
		return v.String()
	case t.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case t.Kind() == reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	}
	return fmt.Sprint(v.Interface())
}
