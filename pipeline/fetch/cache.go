package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/butler-sre/butler/pipeline/atomicfile"
)

// Cache keeps, per source, the last body fetched and the validators that came
// with it, so that the next fetch can be conditional and a 304 can use the
// body. Each manager has a directory (STATE/cache/MANAGER): an index
// (index.json: each source's validators, size and sha256) and one file per
// body, named by the source's key.
//
// It is only an optimisation: an entry that is missing, unreadable, truncated
// or altered is no entry (a plain fetch follows), never a failure. A run that
// finds nothing changed reads one index per manager and no body. Files are
// written atomically through an os.Root of the cache directory.
type Cache struct {
	root *os.Root

	mu      sync.Mutex
	indexes map[string]*cacheIndex // by manager, as loaded this run
}

// cacheVersion is the version of the index format.
const cacheVersion = 1

// indexName is the index file of a manager's directory.
const indexName = "index.json"

// cacheIndex is a manager's index.
type cacheIndex struct {
	Version int                   `json:"version"`
	Entries map[string]IndexEntry `json:"entries"`
	dirty   bool
}

// IndexEntry describes one cached body.
type IndexEntry struct {
	Validators Validators `json:"validators"`
	Size       int        `json:"size"`
	SHA256     string     `json:"sha256"` // hex
}

// OpenCache opens (and creates, 0700) the cache directory dir.
func OpenCache(dir string) (*Cache, error) {
	if err := atomicfile.MkdirAllPath(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Cache{root: root, indexes: map[string]*cacheIndex{}}, nil
}

// Close releases the directory.
func (c *Cache) Close() error { return c.root.Close() }

// Key names the entry of a source fetched with headers: the same source
// with other headers may answer otherwise.
func Key(src string, headers map[string]string) string {
	h := sha256.New()
	h.Write([]byte(src))
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(h, "\x00%s\x00%s", strings.ToLower(k), headers[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// jsonV1 makes go-json-experiment/json read and write the index as
// encoding/json does, in about half the time: every run reads the indexes.
var jsonV1 = jsonv1.DefaultOptionsV1()

// index returns the index of manager, loading it on first use. A missing
// or unreadable index is an empty one.
func (c *Cache) index(manager string) *cacheIndex {
	if ix, ok := c.indexes[manager]; ok {
		return ix
	}
	ix := &cacheIndex{Version: cacheVersion, Entries: map[string]IndexEntry{}}
	if data, err := c.root.ReadFile(path.Join(manager, indexName)); err == nil {
		var loaded cacheIndex
		if jsonv2.Unmarshal(data, &loaded, jsonV1) == nil && loaded.Version == cacheVersion && loaded.Entries != nil {
			ix = &loaded
		}
	}
	c.indexes[manager] = ix
	return ix
}

// Load reads the indexes of managers now rather than on first use.
func (c *Cache) Load(managers []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range managers {
		c.index(m)
	}
}

// Lookup returns the index entry of manager for key, without reading the
// body; ok is false when there is none.
func (c *Cache) Lookup(manager, key string) (IndexEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.index(manager).Entries[key]
	return e, ok
}

// Body reads the body of an entry and checks it against the index; an error
// says why it cannot be used (missing, truncated, altered).
func (c *Cache) Body(manager, key string) ([]byte, error) {
	e, ok := c.Lookup(manager, key)
	if !ok {
		return nil, errors.New("no entry")
	}
	data, err := c.root.ReadFile(path.Join(manager, key))
	if err != nil {
		return nil, err
	}
	if len(data) != e.Size {
		return nil, fmt.Errorf("truncated: %d bytes of %d", len(data), e.Size)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != e.SHA256 {
		return nil, errors.New("the body does not match its checksum")
	}
	return data, nil
}

// Store writes the body of manager for key and notes its entry; Save writes
// the index.
func (c *Cache) Store(manager, key string, v Validators, body []byte) error {
	if err := atomicfile.WriteFile(c.root, path.Join(manager, key), body, 0o600, 0o700); err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	c.mu.Lock()
	defer c.mu.Unlock()
	ix := c.index(manager)
	ix.Entries[key] = IndexEntry{Validators: v, Size: len(body), SHA256: hex.EncodeToString(sum[:])}
	ix.dirty = true
	return nil
}

// Forget drops the entry of manager for key (its body is pruned later).
func (c *Cache) Forget(manager, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ix := c.index(manager)
	if _, ok := ix.Entries[key]; ok {
		delete(ix.Entries, key)
		ix.dirty = true
	}
}

// Save writes the indexes that changed this run.
func (c *Cache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for manager, ix := range c.indexes {
		if !ix.dirty {
			continue
		}
		data, err := jsonv2.Marshal(ix, jsonV1)
		if err == nil {
			err = atomicfile.WriteFile(c.root, path.Join(manager, indexName), data, 0o600, 0o700)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cache index of %s: %w", manager, err))
			continue
		}
		ix.dirty = false
	}
	return errors.Join(errs...)
}

// Prune removes what the cache holds of manager beyond the keys in keep (the
// bodies of sources no longer configured, their index entries, temporary
// files a killed run left); with keep nil the manager's whole directory.
func (c *Cache) Prune(manager string, keep map[string]bool) error {
	if keep == nil {
		c.mu.Lock()
		delete(c.indexes, manager)
		c.mu.Unlock()
		return c.root.RemoveAll(manager)
	}
	c.mu.Lock()
	ix := c.index(manager)
	for key := range ix.Entries {
		if !keep[key] {
			delete(ix.Entries, key)
			ix.dirty = true
		}
	}
	c.mu.Unlock()
	d, err := c.root.Open(manager)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	_ = d.Close()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if n != indexName && !keep[n] {
			if err := c.root.RemoveAll(path.Join(manager, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Managers lists the managers that have entries.
func (c *Cache) Managers() ([]string, error) {
	d, err := c.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
