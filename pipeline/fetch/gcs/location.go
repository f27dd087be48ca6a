package gcs

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Location is one Google Cloud Storage object as a source names it.
type Location struct {
	Bucket string
	Object string
	// Generation pins a generation of the object ("#GENERATION" in the
	// source); "" is the live object.
	Generation string
}

// String names the object as "gs://BUCKET/OBJECT[#GENERATION]".
func (l Location) String() string {
	s := "gs://" + l.Bucket + "/" + l.Object
	if l.Generation != "" {
		s += "#" + l.Generation
	}
	return s
}

// fetcherParams belong to the fetch phase, not to the store (go-getter's
// "?checksum=" and "?archive="), and are left alone.
var fetcherParams = []string{"checksum", "archive"}

// ParseLocation reads a GCS source in the forms go-getter knows (the URL
// after "gcs::") and the usual "gs://" form:
//
//	https://www.googleapis.com/storage/v1/BUCKET/PATH/TO/OBJECT[#GENERATION]
//	gs://BUCKET/PATH/TO/OBJECT[#GENERATION]
//
// query holds the source's parameters; nil means u.Query(). GCS sources
// take none: any parameter but the fetcher's "checksum" and "archive" is
// an error.
func ParseLocation(u *url.URL, query url.Values) (Location, error) {
	if query == nil {
		query = u.Query()
	}
	var unknown []string
	for name := range query {
		if !slices.Contains(fetcherParams, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Location{}, fmt.Errorf("gcs source: unknown parameter %q (gcs sources take none)", unknown[0])
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("gcs source: user info in the URL is not used")
	}
	var loc Location
	host := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "gs":
		loc.Bucket = u.Host
		loc.Object = strings.TrimPrefix(u.Path, "/")
	case u.Scheme == "https" && strings.HasSuffix(host, ".googleapis.com") && strings.Count(host, ".") == 2:
		parts := strings.SplitN(u.Path, "/", 5) // "", "storage", "v1", bucket, object
		if len(parts) < 5 || parts[1] != "storage" {
			return Location{}, fmt.Errorf("gcs source %s: want https://www.googleapis.com/storage/v1/BUCKET/OBJECT", sourceName(u))
		}
		loc.Bucket, loc.Object = parts[3], parts[4]
	default:
		return Location{}, fmt.Errorf("gcs source %s: want gs://BUCKET/OBJECT or gcs::https://www.googleapis.com/storage/v1/BUCKET/OBJECT", sourceName(u))
	}
	loc.Generation = u.Fragment
	switch {
	case loc.Bucket == "":
		return Location{}, fmt.Errorf("gcs source %s: no bucket", sourceName(u))
	case loc.Object == "" || strings.HasSuffix(loc.Object, "/"):
		return Location{}, fmt.Errorf("gcs source %s: names a bucket or prefix, not an object", sourceName(u))
	case strings.Trim(loc.Generation, "0123456789") != "":
		return Location{}, fmt.Errorf("gcs source %s: generation %q is not a number", sourceName(u), loc.Generation)
	}
	return loc, nil
}

// sourceName is u for an error: GCS sources carry no credentials, and
// the query is dropped in case one was put there by mistake.
func sourceName(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.Fragment = ""
	return c.String()
}
