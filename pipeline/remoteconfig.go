package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// keptConfigName is the copy of the last remote configuration that passed the
// checks, in the state directory.
const keptConfigName = "config.toml"

// remoteConfigTimeout bounds the fetch of a remote configuration.
const remoteConfigTimeout = time.Minute

// FetchConfig fetches a configuration from a source URL (with the default
// schemes and size limit) and checks it.
func FetchConfig(ctx context.Context, source string, lookupEnv func(string) (string, bool), client *http.Client) (*Config, []byte, error) {
	tmp, err := os.MkdirTemp("", "butler-config-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	f := NewFetcher(FetcherConfig{Schemes: DefaultSchemes, MaxFileSize: DefaultMaxFileSize, TempDir: tmp, HTTPClient: client})
	ctx, cancel := context.WithTimeout(ctx, remoteConfigTimeout)
	defer cancel()
	name := RedactURL(source)
	data, _, err := f.Fetch(ctx, source, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: fetch configuration %s: %w", ErrConfig, name, err)
	}
	cfg, err := ParseConfig(data, name, "", lookupEnv)
	return cfg, data, err
}

// RemoteConfig is the configuration of a sync whose --config is a URL.
type RemoteConfig struct {
	Config  *Config
	Fetched bool  // false: the kept copy is used
	Problem error // why the kept copy is used
}

// LoadRemoteConfig fetches the configuration at source. When it is fetched and
// valid, a copy is kept in the state directory (stateDir if not empty, else the
// configuration's own state_dir). When the fetch fails or the configuration is
// invalid, the kept copy from stateDir (or DefaultStateDir) is used instead, and
// Problem says why. Without a kept copy the error is returned.
func LoadRemoteConfig(ctx context.Context, source, stateDir string, lookupEnv func(string) (string, bool), client *http.Client) (*RemoteConfig, error) {
	cfg, data, err := FetchConfig(ctx, source, lookupEnv, client)
	if err == nil {
		dir := stateDir
		if dir == "" {
			dir = cfg.Butler.StateDir
		}
		if err := keepConfig(dir, data); err != nil {
			return nil, err
		}
		return &RemoteConfig{Config: cfg, Fetched: true}, nil
	}
	problem := err
	dir := stateDir
	if dir == "" {
		dir = DefaultStateDir
	}
	kept := filepath.Join(dir, keptConfigName)
	data, rerr := os.ReadFile(kept)
	if errors.Is(rerr, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (and no configuration was kept from an earlier run in %s)", problem, dir)
	}
	if rerr != nil {
		return nil, fmt.Errorf("%w (and the kept configuration is unreadable: %v)", problem, rerr)
	}
	cfg, err = ParseConfig(data, kept+" (kept from "+RedactURL(source)+")", "", lookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%w (and the kept configuration no longer passes: %v)", problem, err)
	}
	return &RemoteConfig{Config: cfg, Problem: problem}, nil
}

// keepConfig stores a configuration that passed the checks, durably.
func keepConfig(stateDir string, data []byte) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("keep configuration: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(stateDir, keptConfigName), data, 0o600); err != nil {
		return fmt.Errorf("keep configuration: %w", err)
	}
	return nil
}
