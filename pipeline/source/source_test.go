package source

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestScheme(t *testing.T) {
	cases := []struct {
		name    string
		src     string
		want    string
		wantErr string
	}{
		{name: "https", src: "https://cfg.example.com/p.yml", want: "https"},
		{name: "http", src: "http://cfg.example.com/p.yml", want: "http"},
		{name: "upper-case scheme", src: "HTTPS://cfg.example.com/p.yml", want: "https"},
		{name: "https with user info", src: "https://u:p@cfg.example.com/p.yml", want: "https"},
		{name: "forced s3", src: "s3::https://s3.eu-west-1.amazonaws.com/bucket/rules.yml", want: "s3"},
		{name: "s3 compatible endpoint", src: "s3::http://127.0.0.1:9000/bucket/k.yml?region=us-east-1&aws_access_key_id=A&aws_access_key_secret=S", want: "s3"},
		{name: "s3 shorthand", src: "bucket.s3.amazonaws.com/rules.yml", want: "s3"},
		{name: "forced gcs", src: "gcs::https://www.googleapis.com/storage/v1/bucket/o.yml", want: "gcs"},
		{name: "gs URL", src: "gs://bucket/o.yml", want: "gcs"},
		{name: "gcs shorthand", src: "www.googleapis.com/storage/v1/bucket/o.yml", want: "gcs"},
		{name: "absolute path", src: "/etc/butler/p.yml", want: "file"},
		{name: "file URL", src: "file:///etc/butler/p.yml", want: "file"},
		{name: "relative path", src: "rules/p.yml", want: "file"},
		{name: "github shorthand", src: "github.com/org/repo", want: "git"},
		{name: "github shorthand with a file", src: "github.com/org/repo/p.yml", want: "git"},
		{name: "gitlab shorthand", src: "gitlab.com/org/repo//p.yml", want: "git"},
		{name: "forced git", src: "git::https://example.com/repo.git//p.yml?ref=v1", want: "git"},
		{name: "scp-like git", src: "git@github.com:org/repo.git//p.yml", want: "git"},
		{name: "git protocol", src: "git://example.com/repo.git//p.yml", want: "git"},
		{name: "forced hg", src: "hg::https://example.com/repo", wantErr: `unsupported source scheme "hg"`},
		{name: "ftp", src: "ftp://example.com/p.yml", wantErr: `unsupported source scheme "ftp"`},
		{name: "ssh without git", src: "ssh://example.com/repo", wantErr: `unsupported source scheme "ssh"`},
		{name: "unknown scheme", src: "gopher://example.com/p", wantErr: `unsupported source scheme "gopher"`},
		{name: "credentials never in the error", src: "ftp://user:topsecretpw@example.com/p.yml?token=tok-secret-1", wantErr: `unsupported source scheme "ftp"`},
		{name: "bitbucket shorthand", src: "bitbucket.org/org/repo", wantErr: "bitbucket.org shorthand"},
		{name: "malformed github shorthand", src: "github.com/only-owner", wantErr: "unrecognised source"},
		{name: "subdirectory outside git", src: "https://example.com/a//b.yml", wantErr: "only supported for git"},
		{name: "empty", src: "  ", wantErr: "empty source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Scheme(tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Scheme(%q) = %q, %v; want an error containing %q", tc.src, got, err, tc.wantErr)
				}
				for _, s := range []string{"topsecretpw", "tok-secret-1"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q contains the secret %q", err, s)
					}
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Scheme(%q) = %q, %v; want %q", tc.src, got, err, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	absConf, err := filepath.Abs("conf")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		src     string
		base    string
		want    string
		wantErr string
	}{
		{name: "bare relative", src: "rules.yml", base: "/etc/butler", want: "/etc/butler/rules.yml"},
		{name: "dot relative", src: "./rules/a.yml", base: "/etc/butler", want: "/etc/butler/rules/a.yml"},
		{name: "parent relative", src: "../shared/a.yml", base: "/etc/butler", want: "/etc/shared/a.yml"},
		{name: "forced file relative", src: "file::rules.yml", base: "/etc/butler", want: "file::/etc/butler/rules.yml"},
		{name: "relative base directory", src: "rules.yml", base: "conf", want: filepath.Join(absConf, "rules.yml")},
		{name: "absolute unchanged", src: "/srv/cfg/a.yml", base: "/etc/butler", want: "/srv/cfg/a.yml"},
		{name: "file URL unchanged", src: "file:///srv/cfg/a.yml", base: "/etc/butler", want: "file:///srv/cfg/a.yml"},
		{name: "https unchanged", src: "https://cfg.example.com/a.yml", base: "/etc/butler", want: "https://cfg.example.com/a.yml"},
		{name: "s3 unchanged", src: "s3::https://s3.amazonaws.com/b/a.yml", base: "/etc/butler", want: "s3::https://s3.amazonaws.com/b/a.yml"},
		{name: "gs unchanged", src: "gs://b/a.yml", base: "/etc/butler", want: "gs://b/a.yml"},
		{name: "github shorthand unchanged", src: "github.com/org/repo//a.yml", base: "/etc/butler", want: "github.com/org/repo//a.yml"},
		{name: "scp-like git unchanged", src: "git@github.com:org/repo.git//a.yml", base: "/etc/butler", want: "git@github.com:org/repo.git//a.yml"},
		{name: "s3 shorthand unchanged", src: "bucket.s3.amazonaws.com/a.yml", base: "/etc/butler", want: "bucket.s3.amazonaws.com/a.yml"},
		{name: "forced git unchanged", src: "git::./repo", base: "/etc/butler", want: "git::./repo"},
		{name: "unknown scheme unchanged", src: "ftp://example.com/a.yml", base: "/etc/butler", want: "ftp://example.com/a.yml"},
		{name: "relative without a base", src: "rules.yml", base: "", wantErr: "directory"},
		{name: "empty", src: "", base: "/etc/butler", wantErr: "empty source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.src, tc.base)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve(%q, %q) = %q, %v; want an error containing %q", tc.src, tc.base, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Resolve(%q, %q) = %q, %v; want %q", tc.src, tc.base, got, err, tc.want)
			}
		})
	}
}

func TestKnownSchemes(t *testing.T) {
	known := Known()
	if want := []string{"https", "http", "s3", "gcs", "file", "git"}; !slices.Equal(known, want) {
		t.Fatalf("Known() = %q, want %q", known, want)
	}
	known[0] = "ftp"
	if Known()[0] != "https" || IsKnown("ftp") {
		t.Error("changing the slice Known returned changed the known schemes")
	}
	tests := []struct {
		scheme string
		known  bool
	}{
		{scheme: "https", known: true},
		{scheme: "git", known: true},
		{scheme: "hg", known: false},
		{scheme: "HTTPS", known: false}, // callers lower-case first
		{scheme: "", known: false},
	}
	for _, tt := range tests {
		t.Run("IsKnown "+tt.scheme, func(t *testing.T) {
			if got := IsKnown(tt.scheme); got != tt.known {
				t.Errorf("IsKnown(%q) = %v, want %v", tt.scheme, got, tt.known)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		defaults := DefaultSchemes()
		if slices.Contains(defaults, "git") {
			t.Errorf("DefaultSchemes() = %q allows git, which runs an external program", defaults)
		}
		for _, s := range defaults {
			if !IsKnown(s) {
				t.Errorf("default scheme %q is not known", s)
			}
		}
		if want := []string{"https", "http", "s3", "gcs", "file"}; !slices.Equal(defaults, want) {
			t.Errorf("DefaultSchemes() = %q, want %q", defaults, want)
		}
	})
}

// TestDetect pins the expanded form of each shorthand: the one go-getter
// v1 gives, except where go-getter's loses the query or the bucket (marked).
func TestDetect(t *testing.T) {
	cases := []struct {
		name, src, pwd, want string
		wantErr              string
	}{
		{name: "URL as written", src: "HTTPS://u:p@h/p.yml?b=2&a=1", want: "HTTPS://u:p@h/p.yml?b=2&a=1"},
		{name: "forced URL as written", src: "s3::https://s3.amazonaws.com/b/k", want: "s3::https://s3.amazonaws.com/b/k"},
		{name: "gs URL", src: "gs://bucket/o.yml", want: "gcs::https://www.googleapis.com/storage/v1/bucket/o.yml"},
		{name: "github", src: "github.com/org/repo", want: "git::https://github.com/org/repo.git"},
		{name: "github with a file", src: "github.com/org/repo/p.yml", want: "git::https://github.com/org/repo.git//p.yml"},
		{name: "github with subdir and ref", src: "github.com/org/repo//p.yml?ref=v1", want: "git::https://github.com/org/repo.git//p.yml?ref=v1"},
		{name: "github with a ref", src: "github.com/org/repo?ref=v1", want: "git::https://github.com/org/repo.git?ref=v1"},
		// go-getter: git::https://github.com/org/repo.git//a/b%253Fref=x
		{name: "github with a file and a ref, no //", src: "github.com/org/repo/a/b?ref=x", want: "git::https://github.com/org/repo.git//a/b?ref=x"},
		{name: "github dot-dot kept for Parse to refuse", src: "github.com/org/repo//a/../b", want: "git::https://github.com/org/repo.git//a/../b"},
		{name: "gitlab", src: "gitlab.com/org/repo//p.yml", want: "git::https://gitlab.com/org/repo.git//p.yml"},
		{name: "scp-like", src: "git@github.com:org/repo.git//p.yml", want: "git::ssh://git@github.com/org/repo.git//p.yml"},
		// go-getter sorts the query: ?depth=2&ref=v1
		{name: "scp-like with a query", src: "git@github.com:org/repo.git//p.yml?ref=v1&depth=2", want: "git::ssh://git@github.com/org/repo.git//p.yml?ref=v1&depth=2"},
		{name: "s3 virtual host", src: "bucket.s3.amazonaws.com/rules.yml", want: "s3::https://s3.amazonaws.com/bucket/rules.yml"},
		{name: "s3 virtual host, dash region", src: "bucket.s3-eu-west-1.amazonaws.com/a/b.yml", want: "s3::https://s3-eu-west-1.amazonaws.com/bucket/a/b.yml"},
		{name: "s3 virtual host, dot region", src: "bucket.s3.eu-west-1.amazonaws.com/a/b.yml", want: "s3::https://s3.eu-west-1.amazonaws.com/bucket/a/b.yml"},
		{name: "s3 path style, version", src: "s3-eu-west-1.amazonaws.com/bucket/k?version=3", want: "s3::https://s3-eu-west-1.amazonaws.com/bucket/k?version=3"},
		// go-getter: s3::https://eu-west-1.amazonaws.com/s3/bucket/k
		{name: "s3 path style, dot region", src: "s3.eu-west-1.amazonaws.com/bucket/k", want: "s3::https://s3.eu-west-1.amazonaws.com/bucket/k"},
		{name: "gcs", src: "www.googleapis.com/storage/v1/bucket/o.yml", want: "gcs::https://www.googleapis.com/storage/v1/bucket/o.yml"},
		{name: "absolute path", src: "/etc/my file.yml", want: "file:///etc/my file.yml"},
		{name: "relative path", src: "rules/p.yml?checksum=sha256:ab", pwd: "/etc/butler", want: "file:///etc/butler/rules/p.yml?checksum=sha256:ab"},
		{name: "forced file, relative", src: "file::rules.yml", pwd: "/etc/butler", want: "file::file:///etc/butler/rules.yml"},
		{name: "forced git, relative", src: "git::./repo", pwd: "/etc/butler", want: "git::file:///etc/butler/repo"},
		{name: "forced git on a path with subdir", src: "git::/srv/repo//a.yml", want: "git::file:///srv/repo//a.yml"},
		{name: "relative path without pwd", src: "rules.yml", wantErr: "relative paths require"},
		{name: "subdirectory alone", src: "//p.yml", wantErr: "invalid source string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := Detect(tc.src, tc.pwd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Detect(%q) = %q, %v; want an error containing %q", tc.src, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Detect(%q, %q) = %q, %v; want %q", tc.src, tc.pwd, got, err, tc.want)
			}
		})
	}
}
