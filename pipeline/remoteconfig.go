package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/butler-sre/butler/pipeline/config"
	"github.com/butler-sre/butler/pipeline/fetch"
	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/source"
)

// keptConfigName is the copy of the last remote configuration that passed the
// checks, in the state directory.
const keptConfigName = "config.toml"

// remoteConfigTimeout bounds the fetch of a remote configuration.
const remoteConfigTimeout = time.Minute

// FetchConfig fetches a configuration from a source URL (with the default
// schemes and size limit) and checks it.
func FetchConfig(ctx context.Context, src string, lookupEnv func(string) (string, bool), client *http.Client) (*config.Config, []byte, error) {
	tmp, err := os.MkdirTemp("", "butler-config-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	f := fetch.New(fetch.Config{Schemes: source.DefaultSchemes(), MaxFileSize: config.DefaultMaxFileSize, TempDir: tmp, HTTPClient: client})
	ctx, cancel := context.WithTimeout(ctx, remoteConfigTimeout)
	defer cancel()
	name := redact.URL(src)
	data, _, err := f.Fetch(ctx, src, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: fetch configuration %s: %w", config.ErrInvalid, name, err)
	}
	cfg, err := config.Parse(data, name, "", lookupEnv)
	if cfg != nil {
		cfg.Identity = name
	}
	return cfg, data, err
}

// RemoteConfig is the configuration of a sync whose --config is a URL.
type RemoteConfig struct {
	Config  *config.Config
	Fetched bool   // false: the kept copy is used
	Problem error  // why the kept copy is used
	Keep    []byte // the fetched configuration, for Options.KeepConfig
}

// LoadRemoteConfig fetches the configuration at source. When it is fetched and
// valid, Keep holds it: the sync keeps it in the state directory once it holds
// the lock (Options.KeepConfig), so a run that finds the lock taken changes
// nothing. When the fetch fails or the configuration is
// invalid, the kept copy from stateDir (or DefaultStateDir) is used instead, and
// Problem says why. Without a kept copy the error is returned.
func LoadRemoteConfig(ctx context.Context, source, stateDir string, lookupEnv func(string) (string, bool), client *http.Client) (*RemoteConfig, error) {
	cfg, data, err := FetchConfig(ctx, source, lookupEnv, client)
	if err == nil {
		return &RemoteConfig{Config: cfg, Fetched: true, Keep: data}, nil
	}
	problem := err
	dir := stateDir
	if dir == "" {
		dir = config.DefaultStateDir
	}
	kept := filepath.Join(dir, keptConfigName)
	data, rerr := os.ReadFile(kept)
	if errors.Is(rerr, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (and no configuration was kept from an earlier run in %s)", problem, dir)
	}
	if rerr != nil {
		return nil, fmt.Errorf("%w (and the kept configuration is unreadable: %v)", problem, rerr)
	}
	cfg, err = config.Parse(data, kept+" (kept from "+redact.URL(source)+")", "", lookupEnv)
	if cfg != nil {
		cfg.Identity = redact.URL(source)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (and the kept configuration no longer passes: %v)", problem, err)
	}
	return &RemoteConfig{Config: cfg, Problem: problem}, nil
}
