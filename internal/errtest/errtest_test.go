package errtest

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

// recorder is a testing.TB that keeps what Want reports instead of failing
// the test.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestWant(t *testing.T) {
	boom := errors.New("boom: no such file")
	tests := []struct {
		name, want string
		err        error
		kind       error
		wantMsg    string // what Want reports; "" for nothing
	}{
		{name: "no error wanted, none", want: ""},
		{name: "no error wanted, one", want: "", err: boom, wantMsg: "f() = boom: no such file, want no error"},
		{name: "error wanted, none", want: "no such", wantMsg: `f() gave no error, want one containing "no such"`},
		{name: "error wanted, that one", want: "no such", err: boom},
		{name: "error wanted, another", want: "denied", err: boom, wantMsg: `f(): error "boom: no such file" does not contain "denied"`},
		{name: "error of the kind wanted", want: "not exist", err: fmt.Errorf("wrapped: %w", fs.ErrNotExist), kind: fs.ErrNotExist},
		{name: "error of another kind", want: "no such", err: boom, kind: fs.ErrNotExist, wantMsg: "f(): error boom: no such file is not file does not exist"},
		{name: "no kind wanted", want: "no such", err: boom, kind: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Want(r, "f()", tt.err, tt.want, tt.kind)
			if r.msg != tt.wantMsg {
				t.Errorf("reported %q, want %q", r.msg, tt.wantMsg)
			}
		})
	}
}
