// Package envtest stands in for the environment of the process in the tests
// of the code that reads variables through a lookup function (config.Parse).
// Tests only.
package envtest

// Lookup returns a lookup of the variables vars, in the manner of
// os.LookupEnv: a variable not in vars is unset.
func Lookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}
