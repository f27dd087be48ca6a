package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

var (
	describeSince = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]{4,40})$`) // TAG-N-gHASH
	describeHash  = regexp.MustCompile(`^[0-9a-f]{7,40}$`)                  // HASH: no tag
	releaseTag    = regexp.MustCompile(`^v?([0-9]+(?:\.[0-9]+)*)(?:-([0-9A-Za-z.-]+))?$`)
	debianVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`) // upstream_version without a revision
)

// debVersion turns the output of `git describe --tags --always --dirty` into a
// Debian version that sorts as the commits do:
//
//	v1.2.3               1.2.3
//	v1.2.3-rc.1          1.2.3~rc.1              (before 1.2.3)
//	v1.2.3-4-gabc1234    1.2.3+4.gabc1234        (after 1.2.3, before 1.2.4)
//	abc1234 (no tag)     0.0.0~git20261201.abc1234   (before any release; the date of the commit)
//	...-dirty            ...+dirty, or .dirty after a "+"
func debVersion(describe string, commit time.Time) (string, error) {
	d := strings.TrimSpace(describe)
	base, dirty := strings.CutSuffix(d, "-dirty")
	var v string
	if describeHash.MatchString(base) {
		v = "0.0.0~git" + commit.UTC().Format("20060102") + "." + base
	} else {
		tag, since, hash := base, "", ""
		if m := describeSince.FindStringSubmatch(base); m != nil {
			tag, since, hash = m[1], m[2], m[3]
		}
		m := releaseTag.FindStringSubmatch(tag)
		if m == nil {
			return "", fmt.Errorf("version %q: the tag %q is not a release version such as v1.2.3 or v1.2.3-rc.1", describe, tag)
		}
		v = m[1]
		if m[2] != "" {
			v += "~" + strings.ReplaceAll(m[2], "-", ".")
		}
		if since != "" {
			v += "+" + since + ".g" + hash
		}
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	if !debianVersion.MatchString(v) {
		return "", fmt.Errorf("version %q: %q is not a valid Debian version", describe, v)
	}
	return v, nil
}
