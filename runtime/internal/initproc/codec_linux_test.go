package initproc

import (
	"reflect"
	"strings"
	"testing"
)

// fill sets every field of v, recursively, to a value that is not its
// zero, different from field to field.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(strings.Repeat("x", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(-*n * 1000))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(uint64(*n * 7))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	default:
		panic("fill: a field of kind " + v.Kind().String() + ": teach fill and the binary encoding")
	}
}

// TestBinaryMessagesRoundTrip: a Config and a Message with every field set
// come back whole from their binary encoding (a field added to either and
// not to codec_linux.go fails here), and so do zero ones; every truncation
// of the encoding, and trailing bytes, are errors, never a panic or a
// message taken as whole.
func TestBinaryMessagesRoundTrip(t *testing.T) {
	for _, v := range []any{&Config{}, &Message{}} {
		n := 0
		fill(reflect.ValueOf(v).Elem(), &n)
		zero := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		for _, in := range []any{v, zero} {
			b, _, err := EncodeMsg(in, nil)
			if err != nil || len(b) == 0 || b[0] != binaryTag {
				t.Fatalf("%T: encoded %q, %v", in, b, err)
			}
			out := reflect.New(reflect.TypeOf(in).Elem()).Interface()
			if _, err := DecodeMsg(b, nil, out); err != nil {
				t.Fatalf("%T: decode: %v", in, err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Errorf("%T round trip:\n-%+v\n+%+v", in, in, out)
			}
			if in == zero {
				continue
			}
			for i := 1; i < len(b); i++ {
				out := reflect.New(reflect.TypeOf(in).Elem()).Interface()
				if _, err := DecodeMsg(b[:i], nil, out); err == nil {
					t.Errorf("%T: the first %d of %d bytes decoded without an error", in, i, len(b))
					break
				}
			}
			out = reflect.New(reflect.TypeOf(in).Elem()).Interface()
			if _, err := DecodeMsg(append(b, 0), nil, out); err == nil || !strings.Contains(err.Error(), "after the message") {
				t.Errorf("%T: a trailing byte: %v", in, err)
			}
		}
	}
	// Other messages stay JSON; a binary one for a type without the
	// encoding is an error.
	b, _, err := EncodeMsg(StdioMessage{}, nil)
	if err != nil || len(b) == 0 || b[0] != '{' {
		t.Errorf("StdioMessage encoded %q, %v", b, err)
	}
	var s StdioMessage
	if _, err := DecodeMsg([]byte{binaryTag, 0}, nil, &s); err == nil {
		t.Error("a binary message decoded into a StdioMessage")
	}
}
