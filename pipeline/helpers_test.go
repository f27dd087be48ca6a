package pipeline

// configEnv is a lookup of environment variables for config.Parse.
func configEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}
