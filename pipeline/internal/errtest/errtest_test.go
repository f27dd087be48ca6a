package errtest

import (
	"errors"
	"fmt"
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
		wantMsg    string // what Want reports; "" for nothing
	}{
		{name: "no error wanted, none", want: ""},
		{name: "no error wanted, one", want: "", err: boom, wantMsg: "f() = boom: no such file, want no error"},
		{name: "error wanted, none", want: "no such", wantMsg: `f() gave no error, want one containing "no such"`},
		{name: "error wanted, that one", want: "no such", err: boom},
		{name: "error wanted, another", want: "denied", err: boom, wantMsg: `f(): error "boom: no such file" does not contain "denied"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			Want(r, "f()", tt.err, tt.want)
			if r.msg != tt.wantMsg {
				t.Errorf("reported %q, want %q", r.msg, tt.wantMsg)
			}
		})
	}
}
