package fetch

import (
	"net/url"

	"github.com/butler-sre/butler/pipeline/source"
)

// parseSource parses raw, a source URL after its forced getter, and takes
// its checksum (see takeChecksum); what names the kind of source in the
// error of a URL that does not parse ("invalid URL").
func parseSource(raw, what string) (*url.URL, *source.Checksum, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, errorf(nil, "%s", what)
	}
	sum, err := takeChecksum(u)
	if err != nil {
		return nil, nil, err
	}
	return u, sum, nil
}

// takeChecksum removes the ?checksum= parameter from u and returns it (nil
// when there is none): the body actually used, fetched or kept from an
// earlier run, must have it. checksum=file:URL is not supported: a body of
// its own to fetch for every file, every run.
func takeChecksum(u *url.URL) (*source.Checksum, error) {
	q := u.Query()
	if !q.Has("checksum") {
		return nil, nil
	}
	v := q.Get("checksum")
	q.Del("checksum")
	u.RawQuery = q.Encode()
	c, err := source.ParseChecksum(v)
	if err != nil {
		return nil, errorf(nil, "%s", err.Error())
	}
	if c.File != "" {
		return nil, errorf(nil, "checksum=file:... is not supported: give the checksum itself, like checksum=sha256:HEX")
	}
	return c, nil
}
