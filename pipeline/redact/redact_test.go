package redact

import (
	"slices"
	"strings"
	"testing"

	"github.com/butler-sre/butler/internal/casefile"
)

func TestRedactURL(t *testing.T) {
	casefile.Run(t, "testdata/url.txt", 2, func(t *testing.T, tc casefile.Case) {
		in, want := tc.Fields[0], tc.Fields[1]
		if got := URL(in); got != want {
			t.Errorf("URL(%q)\n got %q\nwant %q", in, got, want)
		}
	})
}

func TestSecrets(t *testing.T) {
	cases := []struct {
		name     string
		source   string
		want     []string // each must be in the result
		wantNone bool
	}{
		{name: "escaped password in raw and decoded forms", source: "https://user:p%40ss-word@h/p", want: []string{"p%40ss-word", "p@ss-word"}},
		{name: "s3 keys", source: "s3::https://h/b/k?aws_access_key_id=AKIDEXAMPLE&aws_access_key_secret=SE%2FCR%2BET", want: []string{"AKIDEXAMPLE", "SE%2FCR%2BET", "SE/CR+ET"}},
		{name: "sshkey", source: "git::ssh://git@h/r.git?sshkey=LS0tLS1C%2B%2F%3D", want: []string{"LS0tLS1C%2B%2F%3D", "LS0tLS1C+/="}},
		{name: "raw value also in escaped forms", source: "https://h/p?token=a b/c", want: []string{"a b/c", "a+b%2Fc", "a%20b%2Fc"}},
		{name: "nested escaped URL password", source: "https://h/p?checksum=file%3Ahttps%3A%2F%2Fu%3Anestedpw%40h%2Fs", want: []string{"nestedpw"}},
		{name: "token as the user name", source: "http://ghp_T0KEN123@h/p.yml", want: []string{"ghp_T0KEN123"}},
		{name: "raw @ in a password", source: "http://u:abc@SECRET@h/", want: []string{"abc@SECRET"}},
		{name: "nothing secret", source: "https://h/p.yml?page=2", wantNone: true},
		{name: "not a URL", source: "/etc/butler/p.yml", wantNone: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Secrets(tc.source)
			if tc.wantNone && len(got) != 0 {
				t.Errorf("Secrets(%q) = %q, want none", tc.source, got)
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("Secrets(%q) = %q, missing %q", tc.source, got, w)
				}
			}
			for _, g := range got {
				if g == "" {
					t.Errorf("Secrets(%q) holds an empty value", tc.source)
				}
			}
			seen := map[string]bool{}
			for _, g := range got {
				if seen[g] {
					t.Errorf("Secrets(%q) holds %q twice", tc.source, g)
				}
				seen[g] = true
			}
		})
	}
}

func TestScrubber(t *testing.T) {
	cases := []struct {
		name    string
		secrets []string
		added   []string
		in      string
		want    string
	}{
		{name: "known secret", secrets: []string{"s3cr3t-value"}, in: "auth failed with s3cr3t-value", want: "auth failed with xxxxx"},
		{name: "every occurrence", secrets: []string{"abcd"}, in: "abcd abcd", want: "xxxxx xxxxx"},
		{name: "short values ignored", secrets: []string{"abc", "", "1"}, in: "abc 1 ok", want: "abc 1 ok"},
		{name: "header value and its credential word", secrets: []string{"Bearer tok-12345"}, in: "sent Bearer tok-12345, then tok-12345", want: "sent xxxxx, then xxxxx"},
		{name: "longest first", secrets: []string{"abcd", "abcdefgh"}, in: "key abcdefgh", want: "key xxxxx"},
		{name: "added later", secrets: []string{"first-secret"}, added: []string{"second-secret"}, in: "first-secret second-secret", want: "xxxxx xxxxx"},
		{name: "unknown URL password", in: "get https://u:zz@h/x failed", want: "get https://u:xxxxx@h/x failed"},
		{name: "secrets of a source", secrets: Secrets("s3::https://h/b/k?aws_access_key_secret=SE%2FCRET-42"), in: "signature for SE/CRET-42 and SE%2FCRET-42", want: "signature for xxxxx and xxxxx"},
		{name: "nothing to do", secrets: []string{"absent-secret"}, in: "http status 404 Not Found", want: "http status 404 Not Found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewScrubber(tc.secrets...)
			if tc.added != nil {
				_ = s.Scrub(tc.in) // the order of Add and Scrub must not matter
				s.Add(tc.added...)
			}
			if got := s.Scrub(tc.in); got != tc.want {
				t.Errorf("Scrub(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestScrubberConcurrent(t *testing.T) {
	s := NewScrubber("base-secret")
	done := make(chan string)
	for i := range 8 {
		go func() {
			s.Add(strings.Repeat("k", 4+i))
			done <- s.Scrub("base-secret")
		}()
	}
	for range 8 {
		if got := <-done; got != "xxxxx" {
			t.Errorf("Scrub = %q, want xxxxx", got)
		}
	}
}
