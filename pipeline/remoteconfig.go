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
	"github.com/butler-sre/butler/pipeline/verify"
)

// keptConfigName is the copy of the last remote configuration that passed the
// checks, in the state directory; keptSigName its signature, when
// --config-key asks for one.
const (
	keptConfigName = "config.toml"
	keptSigName    = "config.toml.minisig"
)

// remoteConfigTimeout bounds the fetch of a remote configuration.
const remoteConfigTimeout = time.Minute

// ConfigSource is where a remote configuration comes from.
type ConfigSource struct {
	URL       string
	LookupEnv func(string) (string, bool)
	Client    *http.Client
	// Key, when set, is the minisign public key (--config-key) that must
	// have signed the configuration: its signature is fetched from URL +
	// ".minisig", and one signed earlier than the kept copy is refused.
	Key string
}

// Fetched is a remote configuration as fetched: checked, and signed when a
// key was given.
type Fetched struct {
	Config    *config.Config
	Data      []byte
	Signature []byte
	signed    verify.Result
}

// keys parses the configuration key.
func (s ConfigSource) keys() (verify.Keys, error) {
	keys, err := verify.ParseKeys([]string{s.Key})
	if err != nil {
		return verify.Keys{}, fmt.Errorf("%w: --config-key: %w", config.ErrInvalid, err)
	}
	return keys, nil
}

// FetchConfig fetches a configuration from a source URL (with the default
// schemes and size limit), verifies its signature when a key is given, and
// checks it.
func FetchConfig(ctx context.Context, s ConfigSource) (*Fetched, error) {
	tmp, err := os.MkdirTemp("", "butler-config-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	f := fetch.New(fetch.Config{Schemes: source.DefaultSchemes(), MaxFileSize: config.DefaultMaxFileSize, TempDir: tmp, HTTPClient: s.Client})
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, remoteConfigTimeout)
	defer cancel()
	name := redact.URL(s.URL)
	data, _, err := f.Fetch(ctx, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch configuration %s: %w", config.ErrInvalid, name, err)
	}
	out := &Fetched{Data: data}
	if s.Key != "" {
		keys, err := s.keys()
		if err != nil {
			return nil, err
		}
		sigSrc := (&config.Verify{Suffix: config.DefaultSigSuffix}).SignatureSource(s.URL)
		if out.Signature, _, err = f.Fetch(ctx, sigSrc, nil); err != nil {
			return nil, fmt.Errorf("%w: configuration %s: signature: %w", config.ErrInvalid, name, err)
		}
		if out.signed, err = keys.Verify(data, out.Signature); err != nil {
			return nil, fmt.Errorf("%w: configuration %s: %w", config.ErrInvalid, name, err)
		}
	}
	cfg, err := config.Parse(data, name, "", s.LookupEnv)
	if cfg != nil {
		cfg.Identity = name
	}
	out.Config = cfg
	return out, err
}

// RemoteConfig is the configuration of a sync whose --config is a URL.
type RemoteConfig struct {
	Config  *config.Config
	Fetched bool  // false: the kept copy is used
	Problem error // why the kept copy is used
	// Keep and KeepSignature are the fetched configuration and its
	// signature, for Options.KeepConfig and Options.KeepConfigSignature.
	Keep, KeepSignature []byte
}

// LoadRemoteConfig fetches the configuration at s.URL. When it is fetched,
// signed (with s.Key), not older than the kept copy, and valid, Keep holds
// it: the sync keeps it in the state directory once it holds the lock
// (Options.KeepConfig), so a run that finds the lock taken changes nothing.
// Otherwise the kept copy from stateDir (or DefaultStateDir) is used instead,
// verified again with s.Key, and Problem says why. Without a kept copy the
// error is returned.
func LoadRemoteConfig(ctx context.Context, s ConfigSource, stateDir string) (*RemoteConfig, error) {
	dir := stateDir
	if dir == "" {
		dir = config.DefaultStateDir
	}
	kept := filepath.Join(dir, keptConfigName)
	got, err := FetchConfig(ctx, s)
	if err == nil && s.Key != "" {
		err = checkConfigReplay(s, kept, got.signed)
	}
	if err == nil {
		return &RemoteConfig{Config: got.Config, Fetched: true, Keep: got.Data, KeepSignature: got.Signature}, nil
	}
	problem := err
	data, rerr := os.ReadFile(kept)
	if errors.Is(rerr, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (and no configuration was kept from an earlier run in %s)", problem, dir)
	}
	if rerr != nil {
		return nil, fmt.Errorf("%w (and the kept configuration is unreadable: %v)", problem, rerr)
	}
	if s.Key != "" {
		if _, err := keptSignature(s, kept, data); err != nil {
			return nil, fmt.Errorf("%w (and the kept configuration %w)", problem, err)
		}
	}
	cfg, err := config.Parse(data, kept+" (kept from "+redact.URL(s.URL)+")", "", s.LookupEnv)
	if cfg != nil {
		cfg.Identity = redact.URL(s.URL)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (and the kept configuration no longer passes: %v)", problem, err)
	}
	return &RemoteConfig{Config: cfg, Problem: problem}, nil
}

// keptSignature verifies the kept copy's own signature with the key.
func keptSignature(s ConfigSource, kept string, data []byte) (verify.Result, error) {
	keys, err := s.keys()
	if err != nil {
		return verify.Result{}, err
	}
	sig, err := os.ReadFile(kept + ".minisig")
	if err != nil {
		return verify.Result{}, fmt.Errorf("has no signature: %w", err)
	}
	res, err := keys.Verify(data, sig)
	if err != nil {
		return verify.Result{}, fmt.Errorf("does not verify: %w", err)
	}
	return res, nil
}

// checkConfigReplay refuses a configuration signed earlier than the kept one.
func checkConfigReplay(s ConfigSource, kept string, got verify.Result) error {
	data, err := os.ReadFile(kept)
	if err != nil {
		return nil // nothing kept yet: nothing to be older than
	}
	prev, err := keptSignature(s, kept, data)
	if err != nil || !prev.HasTimestamp {
		return nil
	}
	if err := verify.CheckReplay(prev.Timestamp, got); err != nil {
		return fmt.Errorf("%w: configuration %s: %w", config.ErrInvalid, redact.URL(s.URL), err)
	}
	return nil
}
