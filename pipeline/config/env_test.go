package config

import (
	"errors"
	"testing"

	"github.com/butler-sre/butler/internal/envtest"
)

// TestExpandEnvAllWhere pins how an unset variable's error names where the
// string is: fields and keys joined with ".", list elements in brackets.
func TestExpandEnvAllWhere(t *testing.T) {
	const head = "[managers.m]\ndest = \"/srv/m\"\n[[managers.m.files]]\nsource = \"https://h/a.yml\"\n"
	for _, tc := range []struct{ extra, want string }{
		{"headers = { A = \"${NOPE}\" }\n",
			"configuration error: c.toml: managers.m.files[0].headers.A: environment variable NOPE is not set"},
		{"[[managers.m.files]]\nsource = \"https://h/${NOPE}.yml\"\n",
			"configuration error: c.toml: managers.m.files[1].source: environment variable NOPE is not set"},
		{"[[managers.m.dirs]]\nsource = \"/srv/${NOPE}\"\n",
			"configuration error: c.toml: managers.m.dirs[0].source: environment variable NOPE is not set"},
		{"[managers.m.reload]\ncommand = [\"kill\", \"${NOPE}\"]\n",
			"configuration error: c.toml: managers.m.reload.command[1]: environment variable NOPE is not set"},
		{"[vars]\nx = [1, { y = \"${NOPE}\" }]\n",
			"configuration error: c.toml: vars.x[1].y: environment variable NOPE is not set"},
		{"[butler]\nstate_dir = \"${BAD NAME}\"\n",
			"configuration error: c.toml: butler.state_dir: \"BAD NAME\" is not an environment variable name"},
	} {
		cfg, err := Parse([]byte(head+tc.extra), "c.toml", "/etc/butler", envtest.Lookup(nil))
		if cfg != nil || err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse with %q: %v, %v; want nil, %q", tc.extra, cfg, err, tc.want)
		}
	}
}
