package source

import (
	"errors"
	"strings"
	"testing"
)

func TestChecksumVerify(t *testing.T) {
	data := []byte("version: 1\n")
	cases := []struct {
		name    string
		value   string // ?checksum=
		data    []byte
		wantErr string
	}{
		{name: "md5 matches", value: "md5:" + md5V1, data: data},
		{name: "sha1 matches", value: "sha1:" + sha1V1, data: data},
		{name: "sha256 matches", value: "sha256:" + sha256V1, data: data},
		{name: "sha512 matches", value: "sha512:" + sha512V1, data: data},
		{name: "bare sha512 matches", value: sha512V1, data: data},
		{name: "mismatch", value: "sha256:" + sha256V1, data: []byte("version: 2\n"), wantErr: "checksum mismatch: expected 09bfcc6a"},
		{name: "checksum file not read yet", value: "file:https://h/SUMS", data: data, wantErr: `type "file" cannot be verified`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseChecksum(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Verify(tc.data)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Verify = %v, want an error containing %q", err, tc.wantErr)
			}
			var me *MismatchError
			if strings.Contains(tc.wantErr, "mismatch") && (!errors.As(err, &me) || me.Type != "sha256") {
				t.Errorf("Verify = %#v, want a *MismatchError of type sha256", err)
			}
		})
	}
}

func TestChecksumFromFile(t *testing.T) {
	other := strings.Repeat("0", 64)
	cases := []struct {
		name    string
		src     string
		content string
		want    string // "TYPE:HEX"
		wantErr string
	}{
		{
			name:    "GNU style, by name",
			src:     "https://h/dir/p.yml?checksum=file:https://h/dir/SHA256SUMS",
			content: other + "  other.yml\n" + sha256V1 + "  p.yml\n",
			want:    "sha256:" + sha256V1,
		},
		{
			name:    "GNU style, binary marker",
			src:     "https://h/dir/p.yml?checksum=file:https://h/dir/SHA256SUMS",
			content: sha256V1 + " *p.yml\n",
			want:    "sha256:" + sha256V1,
		},
		{
			name:    "GNU style, relative to the checksum file",
			src:     "https://h/dir/sub/p.yml?checksum=file:https://h/dir/SHA1SUMS",
			content: other[:40] + "  ./p.yml\n" + sha1V1 + "  ./sub/p.yml\n",
			want:    "sha1:" + sha1V1,
		},
		{
			name:    "BSD style",
			src:     "s3::https://s3.amazonaws.com/bucket/p.yml?checksum=file:https://h/SUMS",
			content: "SHA512 (other.yml) = " + strings.Repeat("0", 128) + "\nSHA512 (p.yml) = " + sha512V1 + "\n",
			want:    "sha512:" + sha512V1,
		},
		{
			name:    "digest alone",
			src:     "https://h/p.yml?checksum=file:https://h/p.yml.md5",
			content: "\n" + md5V1 + "\n",
			want:    "md5:" + md5V1,
		},
		{
			name:    "malformed lines skipped",
			src:     "https://h/p.yml?checksum=file:https://h/SUMS",
			content: "# sums\nnot-hex  p.yml\nMD5 [p.yml] = " + md5V1 + "\n" + md5V1 + "  p.yml\n",
			want:    "md5:" + md5V1,
		},
		{
			name:    "git file by its subdirectory's name",
			src:     "git::https://h/r.git//conf/p.yml?checksum=file:https://h/SUMS",
			content: sha256V1 + "  p.yml\n",
			want:    "sha256:" + sha256V1,
		},
		{
			name:    "not listed",
			src:     "https://h/p.yml?checksum=file:https://h/SUMS",
			content: sha256V1 + "  other.yml\n",
			wantErr: "lists no checksum for p.yml",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.Checksum.FromFile([]byte(tc.content), s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FromFile = %v, %v; want an error containing %q", checksumString(c), err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromFile: %v", err)
			}
			if got := checksumString(c); got != tc.want {
				t.Errorf("FromFile = %s, want %s", got, tc.want)
			}
			if err := c.Verify([]byte("version: 1\n")); err != nil {
				t.Errorf("the checksum read does not verify its content: %v", err)
			}
		})
	}
}
