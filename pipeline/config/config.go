package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/butler-sre/butler/pipeline/redact"
	"github.com/butler-sre/butler/pipeline/source"
)

// ErrInvalid marks every configuration error: the run fetched nothing.
var ErrInvalid = errors.New("configuration error")

// Defaults of the [butler] table and of the per-manager keys.
const (
	DefaultStateDir      = "/var/lib/butler"
	DefaultTextfile      = "/var/lib/node_exporter/textfile_collector/butler.prom"
	DefaultTimeout       = 5 * time.Minute
	DefaultConcurrency   = 8
	DefaultMaxFileSize   = 10 << 20
	DefaultCheckTimeout  = 30 * time.Second
	DefaultReloadMethod  = http.MethodPost
	DefaultReloadTimeout = 10 * time.Second
	DefaultRetries       = 2
)

// Config is a checked configuration, every default applied.
type Config struct {
	Source string // where it was read from, for messages: a path or a redacted URL
	// Identity names the configuration for the state directory it owns: the
	// absolute path of a file, or the redacted URL of a remote one (also when
	// its kept copy is used). Parse sets it to the name; callers refine it.
	Identity string
	Butler   Butler
	Vars     map[string]any
	Managers []*Manager // sorted by name
	Health   Health
	Notify   Notify
}

// Health is the [health] table.
type Health struct {
	StartupGrace time.Duration // UNKNOWN until this long after the first run
	Windows      Windows       // global windows; Auto when "auto"
	History      int           // events kept per manager
}

// Windows are the ages after which a manager turns WARNING and CRITICAL. A zero
// value means "auto": derived from the history of run start times.
type Windows struct {
	WarnAfter time.Duration
	CritAfter time.Duration
}

// Notify is the [notify] table; nil channels are off.
type Notify struct {
	PingURL string
	Webhook *Webhook
	Email   *Email
}

// Webhook is [notify.webhook]: a JSON POST on every health change.
type Webhook struct {
	URL     string
	Headers map[string]string
	Timeout time.Duration
}

// Email is [notify.email]: a mail over SMTP with STARTTLS on every health change.
type Email struct {
	Host     string
	Port     int
	Username string
	Password string
	From     string
	To       []string
	Cc       []string
	Subject  string // prefix of the subject line
}

// Butler is the [butler] table.
type Butler struct {
	StateDir    string
	Textfile    string // "" turns metrics off
	Timeout     time.Duration
	Splay       time.Duration
	Concurrency int
	MaxFileSize int64
	Schemes     []string
}

// Manager is one [managers.NAME] table.
type Manager struct {
	Name         string
	Dest         string // absolute and clean
	TimeoutOK    bool
	LKG          bool
	Check        []string
	CheckTimeout time.Duration
	Vars         map[string]any // [vars] merged with the manager's vars
	Files        []*File
	Dirs         []*Dir  // whole directories of the store
	Prune        bool    // delete the files butler wrote that are no longer wanted
	Verify       *Verify // nil: signatures are not checked
	Reload       *Reload // nil: a written change counts as applied
	Windows      Windows // [health] windows with this manager's overrides
}

// File is one [[managers.NAME.files]] entry.
type File struct {
	Source   string // resolved: relative file sources made absolute
	Path     string // relative to the manager's dest, clean
	Format   string // yml, json or text
	Template bool
	Delims   []string
	Mode     os.FileMode
	Headers  map[string]string
}

// Reload is a [managers.NAME.reload] table: exactly one of URL or Command.
type Reload struct {
	URL     string
	Method  string
	Headers map[string]string
	Timeout time.Duration
	Retries int
	Expect  []int
	Command []string
}

// The raw shapes decoded from TOML, before defaults and checks.
type rawConfig struct {
	Butler   rawButler              `toml:"butler"`
	Vars     map[string]any         `toml:"vars"`
	Managers map[string]*rawManager `toml:"managers"`
	Health   rawHealth              `toml:"health"`
	Notify   rawNotify              `toml:"notify"`
}

type rawHealth struct {
	StartupGrace string `toml:"startup_grace"`
	WarnAfter    string `toml:"warn_after"`
	CritAfter    string `toml:"crit_after"`
	History      *int   `toml:"history"`
}

type rawNotify struct {
	PingURL string      `toml:"ping_url"`
	Webhook *rawWebhook `toml:"webhook"`
	Email   *rawEmail   `toml:"email"`
}

type rawWebhook struct {
	URL     string            `toml:"url"`
	Headers map[string]string `toml:"headers"`
	Timeout string            `toml:"timeout"`
}

type rawEmail struct {
	Host     string   `toml:"host"`
	Port     *int     `toml:"port"`
	Username string   `toml:"username"`
	Password string   `toml:"password"`
	From     string   `toml:"from"`
	To       []string `toml:"to"`
	Cc       []string `toml:"cc"`
	Subject  *string  `toml:"subject"`
}

type rawButler struct {
	StateDir    *string  `toml:"state_dir"`
	Textfile    *string  `toml:"textfile"`
	Timeout     string   `toml:"timeout"`
	Splay       string   `toml:"splay"`
	Concurrency *int     `toml:"concurrency"`
	MaxFileSize any      `toml:"max_file_size"`
	Schemes     []string `toml:"schemes"`
}

type rawManager struct {
	Dest         string         `toml:"dest"`
	TimeoutOK    bool           `toml:"timeout_ok"`
	LKG          *bool          `toml:"lkg"`
	Check        []string       `toml:"check"`
	CheckTimeout string         `toml:"check_timeout"`
	Vars         map[string]any `toml:"vars"`
	Files        []*rawFile     `toml:"files"`
	Dirs         []*rawDir      `toml:"dirs"`
	Prune        *bool          `toml:"prune"`
	Verify       *rawVerify     `toml:"verify"`
	Reload       *rawReload     `toml:"reload"`
	WarnAfter    string         `toml:"warn_after"`
	CritAfter    string         `toml:"crit_after"`
}

// rawFile is a [[managers.NAME.files]] entry; a [[managers.NAME.dirs]]
// entry has the same keys and more (see rawDir).
type rawFile struct {
	Source   string            `toml:"source"`
	Path     string            `toml:"path"`
	Format   string            `toml:"format"`
	Template *bool             `toml:"template"`
	Delims   []string          `toml:"delims"`
	Mode     string            `toml:"mode"`
	Headers  map[string]string `toml:"headers"`
}

type rawReload struct {
	URL     string            `toml:"url"`
	Method  string            `toml:"method"`
	Headers map[string]string `toml:"headers"`
	Timeout string            `toml:"timeout"`
	Retries *int              `toml:"retries"`
	Expect  []int             `toml:"expect"`
	Command []string          `toml:"command"`
}

var (
	managerNameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	methodRE       = regexp.MustCompile(`^[A-Z]+$`)
	reservedVars   = []string{"env", "host", "manager"}
	configEnvVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// LoadFile reads and checks the configuration file at path.
func LoadFile(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	cfg, err := Parse(data, path, filepath.Dir(abs), lookupEnv)
	if cfg != nil {
		cfg.Identity = abs
	}
	return cfg, err
}

// readLimited reads a configuration file: a regular file of at most MaxSize
// bytes (so that --config /dev/zero is an error, not a run that never ends).
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, MaxSize>>20)
	}
	return data, nil
}

// Override sets what the command line overrides (--state-dir, --textfile;
// "" leaves a value alone) and checks the rules those values take part in
// again, so that an override can never slip past them: the state directory
// may not overlap a manager's dest, and the textfile must end in ".prom".
func (c *Config) Override(stateDir string, textfile *string) error {
	ch := &checker{name: c.Source}
	if stateDir != "" {
		abs, err := filepath.Abs(stateDir)
		if err != nil {
			return fmt.Errorf("%w: --state-dir %s: %w", ErrInvalid, stateDir, err)
		}
		c.Butler.StateDir = abs
	}
	if textfile != nil {
		c.Butler.Textfile = *textfile
		if *textfile != "" && !strings.HasSuffix(*textfile, ".prom") {
			ch.errorf("--textfile %q must end in .prom (node_exporter reads only *.prom)", *textfile)
		}
	}
	ch.stateOverlaps(c)
	return errors.Join(ch.errs...)
}

// Parse decodes and checks a configuration. name is used in messages; baseDir
// resolves relative dest directories and file sources ("" forbids them, as for a
// configuration fetched from a URL). Every problem found is reported, joined, each
// wrapping ErrInvalid. When the [butler] table itself is right, the returned Config
// is not nil even with errors, so the caller knows where to write metrics.
func Parse(data []byte, name, baseDir string, lookupEnv func(string) (string, bool)) (*Config, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %s: larger than %d MiB", ErrInvalid, name, MaxSize>>20)
	}
	if line, err := checkDepth(data); err != nil {
		return nil, fmt.Errorf("%w: %s: line %d: %w", ErrInvalid, name, line, err)
	}
	var raw rawConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%w: %s: line %d: %s", ErrInvalid, name, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	c := &checker{name: name, baseDir: baseDir}
	for _, p := range slices.Concat(checkShapes(md, data), checkCase(md, data), checkInlineExtended(data)) {
		c.errorf("%s", p)
	}
	undecoded := slices.DeleteFunc(md.Undecoded(), isVars)
	for _, k := range undecoded {
		// Only report the outermost unknown key: its children follow from it.
		if len(k) > 1 && slices.ContainsFunc(undecoded, func(p toml.Key) bool {
			return len(p) < len(k) && slices.Equal(p, k[:len(p)])
		}) {
			continue
		}
		c.errorf("line %d: unknown key %q", keyLine(data, k), k.String())
	}
	if err := expandEnvAll(reflect.ValueOf(&raw).Elem(), lookupEnv); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	cfg := &Config{Source: name, Identity: name}
	before := len(c.errs)
	cfg.Butler = c.butler(raw.Butler)
	butlerOK := len(c.errs) == before
	cfg.Vars = raw.Vars
	if cfg.Vars == nil {
		cfg.Vars = map[string]any{}
	}
	c.vars("[vars]", cfg.Vars)
	cfg.Health = c.health(raw.Health)
	cfg.Notify = c.notify(raw.Notify)

	if len(raw.Managers) == 0 {
		c.errorf("no manager: add a [managers.NAME] table with dest and files")
	}
	names := make([]string, 0, len(raw.Managers))
	for n := range raw.Managers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if m := c.manager(n, raw.Managers[n], cfg); m != nil {
			cfg.Managers = append(cfg.Managers, m)
		}
	}
	c.overlaps(cfg)
	if len(c.errs) > 0 && !butlerOK {
		// Where the metrics go is not known for sure: write none.
		return nil, errors.Join(c.errs...)
	}
	if len(c.errs) > 0 {
		return cfg, errors.Join(c.errs...)
	}
	return cfg, nil
}

// Manager returns the manager called name, or nil.
func (c *Config) Manager(name string) *Manager {
	for _, m := range c.Managers {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Paths returns the path of every file of the manager, in order.
func (m *Manager) Paths() []string {
	out := make([]string, len(m.Files))
	for i, f := range m.Files {
		out[i] = f.Path
	}
	return out
}

// checker collects every problem of a configuration, each naming where it is.
type checker struct {
	name    string
	baseDir string
	errs    []error
}

func (c *checker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: %s: %s", ErrInvalid, c.name, fmt.Sprintf(format, args...)))
}

func (c *checker) duration(where, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		c.errorf("%s: %q is not a duration (write it like \"10s\", \"5m\")", where, s)
		return def
	}
	return d
}

func (c *checker) butler(r rawButler) Butler {
	b := Butler{
		StateDir:    DefaultStateDir,
		Textfile:    DefaultTextfile,
		Timeout:     c.duration("[butler] timeout", r.Timeout, DefaultTimeout),
		Splay:       c.duration("[butler] splay", r.Splay, 0),
		Concurrency: DefaultConcurrency,
		MaxFileSize: DefaultMaxFileSize,
		Schemes:     source.DefaultSchemes(),
	}
	if r.StateDir != nil {
		if *r.StateDir == "" {
			c.errorf("[butler] state_dir: must not be empty")
		} else {
			b.StateDir = c.localPath("[butler] state_dir", *r.StateDir)
		}
	}
	if r.Textfile != nil {
		b.Textfile = ""
		if *r.Textfile != "" {
			b.Textfile = c.localPath("[butler] textfile", *r.Textfile)
			if !strings.HasSuffix(b.Textfile, ".prom") {
				c.errorf("[butler] textfile: %q must end in .prom (node_exporter reads only *.prom)", *r.Textfile)
			}
		}
	}
	if b.Timeout == 0 {
		c.errorf("[butler] timeout: must be more than 0")
	}
	if r.Concurrency != nil {
		if *r.Concurrency < 1 {
			c.errorf("[butler] concurrency: must be at least 1, not %d", *r.Concurrency)
		} else {
			b.Concurrency = *r.Concurrency
		}
	}
	if r.MaxFileSize != nil {
		n, err := ParseSize(r.MaxFileSize)
		if err != nil {
			c.errorf("[butler] max_file_size: %v", err)
		} else {
			b.MaxFileSize = n
		}
	}
	if r.Schemes != nil {
		b.Schemes = nil
		for _, s := range r.Schemes {
			s = strings.ToLower(s)
			switch {
			case !source.IsKnown(s):
				c.errorf("[butler] schemes: unknown scheme %q (known: %s)", s, strings.Join(source.Known(), ", "))
			case !slices.Contains(b.Schemes, s):
				b.Schemes = append(b.Schemes, s)
			}
		}
	}
	return b
}

// localPath makes p absolute against the configuration's directory.
func (c *checker) localPath(where, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if c.baseDir == "" {
		c.errorf("%s: %q must be an absolute path when the configuration is not a local file", where, p)
		return p
	}
	return filepath.Join(c.baseDir, p)
}

func (c *checker) vars(where string, vars map[string]any) {
	for _, r := range reservedVars {
		if _, ok := vars[r]; ok {
			c.errorf("%s: %q is a reserved template name (env, host and manager are set by butler)", where, r)
		}
	}
}

func (c *checker) manager(name string, r *rawManager, cfg *Config) *Manager {
	where := "manager " + name
	if !managerNameRE.MatchString(name) {
		c.errorf("%s: the name may only hold letters, digits, '_' and '-'", where)
		return nil
	}
	if r == nil {
		r = &rawManager{}
	}
	m := &Manager{
		Name:         name,
		TimeoutOK:    r.TimeoutOK,
		LKG:          r.LKG == nil || *r.LKG,
		Prune:        r.Prune == nil || *r.Prune,
		Check:        r.Check,
		CheckTimeout: c.duration(where+": check_timeout", r.CheckTimeout, DefaultCheckTimeout),
		Vars:         mergeVars(cfg.Vars, r.Vars),
	}
	c.vars(where+": vars", r.Vars)
	if r.Check != nil && (len(r.Check) == 0 || r.Check[0] == "") {
		c.errorf("%s: check: give the command as a list, program first", where)
	}
	switch {
	case r.Dest == "":
		c.errorf("%s: dest is required (the directory its files are written to)", where)
	default:
		m.Dest = c.localPath(where+": dest", r.Dest)
		if m.Dest == "/" {
			c.errorf("%s: dest must not be \"/\"", where)
		}
	}
	if len(r.Files) == 0 && len(r.Dirs) == 0 {
		c.errorf("%s: no files: add at least one [[managers.%s.files]] or [[managers.%s.dirs]]", where, name, name)
	}
	seen := make(map[string]int, len(r.Files))
	fileNums := make([]int, 0, len(r.Files)) // of each of m.Files: its number in the configuration
	for i, rf := range r.Files {
		f := c.file(where+": file #"+strconv.Itoa(i+1), m, rf, cfg.Butler.Schemes)
		if f == nil {
			continue
		}
		if j, dup := seen[f.Path]; dup {
			c.errorf("%s: files #%d and #%d both write %q", where, j, i+1, f.Path)
			continue
		}
		seen[f.Path] = i + 1
		fileNums = append(fileNums, i+1)
		if m.Files == nil {
			m.Files = make([]*File, 0, len(r.Files)) // room for them all
		}
		m.Files = append(m.Files, f)
	}
	if r.Verify != nil {
		m.Verify = c.verify(where+": verify", r.Verify)
	}
	var dirNums []int // of each of m.Dirs: its number in the configuration
	for i, rd := range r.Dirs {
		d := c.dir(where+": dir #"+strconv.Itoa(i+1), rd, cfg.Butler.Schemes)
		if d == nil {
			continue
		}
		if m.Verify != nil {
			d.sigSuffix = m.Verify.Suffix
		}
		dirNums = append(dirNums, i+1)
		m.Dirs = append(m.Dirs, d)
	}
	c.dirOverlaps(where, m, dirNums, fileNums)
	if r.Reload != nil {
		m.Reload = c.reload(where+": reload", r.Reload)
	}
	m.Windows = cfg.Health.Windows
	if r.WarnAfter != "" {
		m.Windows.WarnAfter = c.window(where+": warn_after", r.WarnAfter)
	}
	if r.CritAfter != "" {
		m.Windows.CritAfter = c.window(where+": crit_after", r.CritAfter)
	}
	c.windowOrder(where, m.Windows)
	return m
}

// Defaults of [health].
const (
	DefaultStartupGrace = 5 * time.Minute
	DefaultHistory      = 50
	DefaultWebhookTime  = 10 * time.Second
	DefaultSMTPPort     = 587
	DefaultSubject      = "[butler]"
)

func (c *checker) health(r rawHealth) Health {
	h := Health{
		StartupGrace: c.duration("[health] startup_grace", r.StartupGrace, DefaultStartupGrace),
		History:      DefaultHistory,
		Windows: Windows{
			WarnAfter: c.window("[health] warn_after", r.WarnAfter),
			CritAfter: c.window("[health] crit_after", r.CritAfter),
		},
	}
	c.windowOrder("[health]", h.Windows)
	if r.History != nil {
		if *r.History < 1 || *r.History > 10000 {
			c.errorf("[health] history: must be between 1 and 10000, not %d", *r.History)
		} else {
			h.History = *r.History
		}
	}
	return h
}

// window reads a health window: a duration, or "auto" (0).
func (c *checker) window(where, s string) time.Duration {
	if s == "" || strings.EqualFold(s, "auto") {
		return 0
	}
	d := c.duration(where, s, 0)
	if d == 0 {
		c.errorf("%s: must be \"auto\" or a duration more than 0", where)
	}
	return d
}

func (c *checker) windowOrder(where string, w Windows) {
	if w.WarnAfter > 0 && w.CritAfter > 0 && w.WarnAfter >= w.CritAfter {
		c.errorf("%s: warn_after (%s) must be shorter than crit_after (%s)", where, w.WarnAfter, w.CritAfter)
	}
}

func (c *checker) notify(r rawNotify) Notify {
	n := Notify{PingURL: r.PingURL}
	httpURL := func(where, s string) {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.errorf("%s: %s is not an http(s) URL", where, redact.URL(s))
		}
	}
	if r.PingURL != "" {
		httpURL("[notify] ping_url", r.PingURL)
	}
	if w := r.Webhook; w != nil {
		if w.URL == "" {
			c.errorf("[notify.webhook] url is required")
		} else {
			httpURL("[notify.webhook] url", w.URL)
		}
		n.Webhook = &Webhook{URL: w.URL, Headers: w.Headers, Timeout: c.duration("[notify.webhook] timeout", w.Timeout, DefaultWebhookTime)}
	}
	if e := r.Email; e != nil {
		m := &Email{Host: e.Host, Port: DefaultSMTPPort, Username: e.Username, Password: e.Password,
			From: e.From, To: e.To, Cc: e.Cc, Subject: DefaultSubject}
		if e.Port != nil {
			m.Port = *e.Port
		}
		if e.Subject != nil {
			m.Subject = *e.Subject
		}
		if m.Host == "" {
			c.errorf("[notify.email] host is required")
		}
		if m.Port < 1 || m.Port > 65535 {
			c.errorf("[notify.email] port %d is not a TCP port", m.Port)
		}
		if m.From == "" {
			c.errorf("[notify.email] from is required")
		}
		if len(m.To) == 0 {
			c.errorf("[notify.email] to: give at least one address")
		}
		if (m.Username == "") != (m.Password == "") {
			c.errorf("[notify.email] username and password go together")
		}
		for _, a := range append(append([]string{m.From}, m.To...), m.Cc...) {
			if a != "" && (!strings.Contains(a, "@") || strings.ContainsAny(a, " \r\n<>,")) {
				c.errorf("[notify.email] %q is not a mail address", a)
			}
		}
		n.Email = m
	}
	return n
}

func (c *checker) file(where string, m *Manager, r *rawFile, schemes []string) *File {
	resolved, scheme, ok := c.entrySource(where, r, schemes)
	if !ok {
		return nil
	}
	p, where, ok := c.entryPath(where, "file", r)
	if !ok {
		return nil
	}
	f := &File{
		Source:   resolved,
		Path:     filepath.ToSlash(filepath.Clean(p)),
		Template: r.Template == nil || *r.Template,
		Delims:   r.Delims,
		Headers:  r.Headers,
	}
	var format string
	format, f.Mode = c.entryKeys(where, scheme, r, f.Template)
	f.Format = cmp.Or(format, FormatFromPath(f.Path))
	return f
}

// entrySource checks the source of a [[files]] or [[dirs]] entry (see
// source), which must be set.
func (c *checker) entrySource(where string, r *rawFile, schemes []string) (resolved, scheme string, ok bool) {
	if r == nil || r.Source == "" {
		c.errorf("%s: source is required", where)
		return "", "", false
	}
	return c.source(where, r.Source, schemes)
}

// entryPath is the path under dest of a [[files]] or [[dirs]] entry (see
// destPath) and where with that path added; false (with the error
// recorded) when there is none or it could leave dest. kind ("file",
// "directory") words the errors.
func (c *checker) entryPath(where, kind string, r *rawFile) (p, at string, ok bool) {
	if p, ok = c.destPath(where, kind, r.Path, r.Source); !ok {
		return "", "", false
	}
	at = where + " (" + p + ")"
	if err := checkRelPath(p); err != nil {
		msg := err.Error()
		if kind == "directory" {
			msg = strings.Replace(msg, "does not name a file", "does not name a directory under dest", 1)
		}
		c.errorf("%s: path: %s", at, msg)
		return "", "", false
	}
	return p, at, true
}

// entryKeys checks the format, delims, mode and headers keys of a [[files]]
// or [[dirs]] entry whose source has scheme: it returns the format set (""
// when none is) and the mode (0644 when none is). Only http(s) sources are
// sent headers.
func (c *checker) entryKeys(where, scheme string, r *rawFile, template bool) (format string, mode os.FileMode) {
	if r.Format != "" {
		format = c.format(where, r.Format)
	}
	c.delims(where, template, r.Delims)
	mode = c.mode(where, r.Mode, 0o644)
	if len(r.Headers) > 0 && scheme != "http" && scheme != "https" {
		c.errorf("%s: headers are only sent to http(s) sources, not %s", where, scheme)
	}
	return format, mode
}

// source checks a source of files or dirs: its scheme is known and allowed,
// and a relative local path is resolved against the configuration's
// directory. ok is false when the source is refused.
func (c *checker) source(where, src string, schemes []string) (resolved, scheme string, ok bool) {
	scheme, err := source.Scheme(src)
	if err != nil {
		c.errorf("%s: source %s: %v", where, redact.URL(src), err)
		return "", "", false
	}
	if !slices.Contains(schemes, scheme) {
		c.errorf("%s: source %s: scheme %q is not allowed (add it to [butler] schemes)", where, redact.URL(src), scheme)
		return "", "", false
	}
	if scheme == "file" && c.baseDir == "" && !source.IsAbsFile(src) {
		c.errorf("%s: source %q must be absolute when the configuration is not a local file", where, src)
		return "", "", false
	}
	if scheme == "http" || scheme == "https" {
		// Resolve gives back every http(s) source as written, and would
		// parse it again to tell so.
		return src, scheme, true
	}
	base := c.baseDir
	if base == "" {
		base = "/"
	}
	resolved, err = source.Resolve(src, base)
	if err != nil {
		c.errorf("%s: source %s: %v", where, redact.URL(src), err)
		return "", "", false
	}
	return resolved, scheme, true
}

// format checks a format key and returns the format it names ("yaml" is "yml").
func (c *checker) format(where, format string) string {
	f := strings.ToLower(format)
	switch f {
	case "yaml":
		return "yml"
	case "yml", "json", "text":
		return f
	default:
		c.errorf("%s: format %q is not one of yml, yaml, json, text", where, format)
		return "text"
	}
}

// delims checks a delims key.
func (c *checker) delims(where string, template bool, delims []string) {
	if delims == nil {
		return
	}
	switch {
	case !template:
		c.errorf("%s: delims is set but template = false", where)
	case len(delims) != 2 || delims[0] == "" || delims[1] == "" || delims[0] == delims[1] ||
		strings.ContainsAny(delims[0]+delims[1], " \t\r\n="):
		c.errorf("%s: delims must be two different non-empty markers without spaces or '=', like [\"[[\", \"]]\"]", where)
	}
}

// mode checks a mode key; "" gives def.
func (c *checker) mode(where, mode string, def os.FileMode) os.FileMode {
	if mode == "" {
		return def
	}
	m, err := strconv.ParseUint(mode, 8, 32)
	if err != nil || m > 0o777 {
		c.errorf("%s: mode %q is not an octal permission like \"0644\"", where, mode)
		return def
	}
	return os.FileMode(m)
}

func (c *checker) reload(where string, r *rawReload) *Reload {
	rl := &Reload{
		URL:     r.URL,
		Method:  strings.ToUpper(r.Method),
		Headers: r.Headers,
		Timeout: c.duration(where+": timeout", r.Timeout, DefaultReloadTimeout),
		Retries: DefaultRetries,
		Expect:  r.Expect,
		Command: r.Command,
	}
	if rl.Timeout == 0 {
		c.errorf("%s: timeout must be more than 0", where)
	}
	switch {
	case r.URL != "" && r.Command != nil:
		c.errorf("%s: set url or command, not both", where)
	case r.URL == "" && r.Command == nil:
		c.errorf("%s: set url or command", where)
	case r.URL != "":
		u, err := url.Parse(r.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.errorf("%s: url %s is not an http(s) URL", where, redact.URL(r.URL))
		}
		if rl.Method == "" {
			rl.Method = DefaultReloadMethod
		}
		if !methodRE.MatchString(rl.Method) {
			c.errorf("%s: method %q is not an HTTP method", where, r.Method)
		}
	default:
		if len(r.Command) == 0 || r.Command[0] == "" {
			c.errorf("%s: command: give the command as a list, program first", where)
		}
		if r.Method != "" || len(r.Headers) > 0 {
			c.errorf("%s: method and headers only go with url", where)
		}
	}
	if r.Retries != nil {
		if *r.Retries < 0 || *r.Retries > 10 {
			c.errorf("%s: retries must be between 0 and 10, not %d", where, *r.Retries)
		} else {
			rl.Retries = *r.Retries
		}
	}
	if rl.Expect == nil {
		rl.Expect = []int{http.StatusOK}
	}
	if len(rl.Expect) == 0 {
		c.errorf("%s: expect must hold at least one HTTP status", where)
	}
	for _, code := range rl.Expect {
		if code < 100 || code > 599 {
			c.errorf("%s: expect: %d is not an HTTP status", where, code)
		}
	}
	return rl
}

// overlaps rejects managers whose dest directories overlap each other or the state directory.
func (c *checker) overlaps(cfg *Config) {
	for i, a := range cfg.Managers {
		if a.Dest == "" {
			continue
		}
		for _, b := range cfg.Managers[i+1:] {
			if b.Dest != "" && (within(a.Dest, b.Dest) || within(b.Dest, a.Dest)) {
				c.errorf("managers %s and %s: dest directories %s and %s overlap", a.Name, b.Name, a.Dest, b.Dest)
			}
		}
	}
	c.stateOverlaps(cfg)
}

// StateDirSafe reports whether the state directory overlaps no manager's
// dest: only then may anything be written there, even the metrics of a run
// that failed on its configuration.
func (c *Config) StateDirSafe() bool {
	ch := &checker{}
	ch.stateOverlaps(c)
	return len(ch.errs) == 0
}

// stateOverlaps rejects managers whose dest overlaps the state directory.
func (c *checker) stateOverlaps(cfg *Config) {
	for _, a := range cfg.Managers {
		if a.Dest != "" && (within(a.Dest, cfg.Butler.StateDir) || within(cfg.Butler.StateDir, a.Dest)) {
			c.errorf("manager %s: dest %s overlaps the state directory %s", a.Name, a.Dest, cfg.Butler.StateDir)
		}
	}
}

// within reports whether the directory a is b or below it.
func within(a, b string) bool {
	return a == b || strings.HasPrefix(a, strings.TrimSuffix(b, "/")+"/")
}

// destPath is the path under dest that an entry names: its path, or else
// the base name of its source; false (with the error recorded) when neither
// gives one. kind ("file", "directory") words the error.
func (c *checker) destPath(where, kind, p, src string) (string, bool) {
	if p != "" {
		return p, true
	}
	if p = source.BaseName(src); p == "" {
		c.errorf("%s: cannot tell a %s name from source %s: set path", where, kind, redact.URL(src))
		return "", false
	}
	return p, true
}

// checkRelPath refuses paths that could leave the manager's directory.
func checkRelPath(p string) error {
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must be relative to dest", p)
	}
	for part := range strings.SplitSeq(filepath.ToSlash(p), "/") {
		if part == ".." {
			return fmt.Errorf("%q must not contain \"..\"", p)
		}
	}
	if clean := filepath.Clean(p); clean == "." {
		return fmt.Errorf("%q does not name a file", p)
	}
	return nil
}

// mergeVars returns global vars with the manager's laid over them (top level only).
func mergeVars(global, own map[string]any) map[string]any {
	out := make(map[string]any, len(global)+len(own))
	for k, v := range global {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// ParseSize reads a size: a number of bytes, or a string like "10MiB", "512KiB",
// "1GB", "2048".
func ParseSize(v any) (int64, error) {
	switch n := v.(type) {
	case int64:
		if n <= 0 {
			return 0, fmt.Errorf("%d is not a positive size", n)
		}
		return n, nil
	case string:
		s := strings.TrimSpace(n)
		units := []struct {
			suffix string
			mult   int64
		}{
			{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
			{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
			{"B", 1}, {"", 1},
		}
		for _, u := range units {
			if !strings.HasSuffix(s, u.suffix) {
				continue
			}
			num := strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			x, err := strconv.ParseInt(num, 10, 64)
			if err != nil || x <= 0 || x > (1<<62)/u.mult {
				break
			}
			return x * u.mult, nil
		}
		return 0, fmt.Errorf("%q is not a size (write it like \"10MiB\", \"512KiB\" or a number of bytes)", n)
	default:
		return 0, fmt.Errorf("%v is not a size (write it like \"10MiB\" or a number of bytes)", v)
	}
}

// keyLine finds the line where a TOML key is written, for messages about
// unknown keys and keys of the wrong type: the header of a table, or the key
// inside the table (or inline table) it belongs to, so that a key of the same
// name in another table is never taken for it. It is a best effort: 0 when
// the key cannot be found.
func keyLine(data []byte, k toml.Key) int {
	if len(k) == 0 {
		return 0
	}
	full := k.String()
	parent := toml.Key(k[:len(k)-1]).String()
	last := k[len(k)-1]
	table := ""
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if h, ok := tableHeader(t); ok {
			if h == full {
				return i + 1
			}
			table = h
			continue
		}
		key, _, found := strings.Cut(t, "=")
		if !found {
			continue
		}
		key = strings.TrimSpace(key)
		path := key
		if table != "" {
			path = table + "." + key
		}
		switch {
		case path == full || unquote(path) == full:
			return i + 1
		case strings.HasPrefix(full, path+".") && strings.Contains(t, "{"):
			// inline table: { key = ... } on this line
			for _, cand := range []string{last, strconv.Quote(last)} {
				if strings.Contains(t, "{"+cand+" ") || strings.Contains(t, " "+cand+" =") || strings.Contains(t, " "+cand+"=") || strings.Contains(t, "{"+cand+"=") {
					return i + 1
				}
			}
		case table == parent && (key == last || key == strconv.Quote(last)):
			return i + 1
		}
	}
	return 0
}

// tableHeader returns the name of a [table] or [[array of tables]] header line.
func tableHeader(t string) (string, bool) {
	if !strings.HasPrefix(t, "[") {
		return "", false
	}
	name := strings.TrimPrefix(strings.TrimPrefix(t, "["), "[")
	end := strings.Index(name, "]")
	if end < 0 {
		return "", false
	}
	return unquote(strings.TrimSpace(name[:end])), true
}

// unquote drops the quotes around the parts of a dotted key, roughly:
// managers."my-app".files -> managers.my-app.files.
func unquote(key string) string {
	if isBareDotted(key) {
		return key // nothing to trim
	}
	parts := strings.Split(key, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// isBareDotted reports whether key holds no quote, no white space and no
// byte outside ASCII: then unquote gives it back as it is.
func isBareDotted(key string) bool {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c >= utf8.RuneSelf, c == '"', c == '\'', c == ' ', '\t' <= c && c <= '\r':
			return false
		}
	}
	return true
}

// expandEnvAll replaces ${NAME} in every string of v (struct fields, slices, maps,
// values of vars) with the environment variable NAME; "$${" stands for "${".
// An error names where the string is, as "managers.m.files[0].source".
func expandEnvAll(v reflect.Value, lookup func(string) (string, bool)) error {
	e := &envExpander{lookup: lookup}
	return e.expand(v)
}

// envExpander walks the raw configuration for expandEnvAll. It keeps the
// path to the value it is at as steps and spells it out only for an error,
// so that a configuration without one builds no strings for it.
type envExpander struct {
	lookup func(string) (string, bool)
	path   []envStep
}

// envStep is one step of the path to a value: a field of a struct, an
// element of a slice or a value of a map.
type envStep struct {
	owner reflect.Type // a field: the struct type; nil for the other steps
	n     int          // a field or an element: its index
	key   string       // a map value: its key, as fmt.Sprint writes it
	isKey bool
}

// where spells the path out: field and key names joined with ".", element
// indexes in brackets.
func (e *envExpander) where() string {
	w := ""
	for _, s := range e.path {
		switch {
		case s.owner != nil:
			w = joinWhere(w, s.owner.Field(s.n).Tag.Get("toml"))
		case s.isKey:
			w = joinWhere(w, s.key)
		default:
			w = fmt.Sprintf("%s[%d]", w, s.n)
		}
	}
	return w
}

// expandAt expands v, one step further down the path.
func (e *envExpander) expandAt(v reflect.Value, step envStep) error {
	e.path = append(e.path, step)
	err := e.expand(v)
	e.path = e.path[:len(e.path)-1]
	return err
}

// expand replaces ${NAME} in every string of v.
func (e *envExpander) expand(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		if v.Kind() == reflect.Interface {
			inner := reflect.New(v.Elem().Type()).Elem()
			inner.Set(v.Elem())
			if err := e.expand(inner); err != nil {
				return err
			}
			v.Set(inner)
			return nil
		}
		return e.expand(v.Elem())
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			if err := e.expandAt(v.Field(i), envStep{owner: t, n: i}); err != nil {
				return err
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := e.expandAt(v.Index(i), envStep{n: i}); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			val := v.MapIndex(k)
			cp := reflect.New(val.Type()).Elem()
			cp.Set(val)
			if err := e.expandAt(cp, envStep{key: mapKeyName(k), isKey: true}); err != nil {
				return err
			}
			v.SetMapIndex(k, cp)
		}
	case reflect.String:
		s, err := ExpandEnv(v.String(), e.lookup)
		if err != nil {
			return fmt.Errorf("%s: %w", e.where(), err)
		}
		v.SetString(s)
	}
	return nil
}

// mapKeyName is a map key as fmt.Sprint writes it, without boxing a string
// key to do so.
func mapKeyName(k reflect.Value) string {
	if k.Kind() == reflect.String && k.Type().NumMethod() == 0 {
		return k.String()
	}
	return fmt.Sprint(k.Interface())
}

// joinWhere adds name to where; an embedded struct has no name of its own,
// and adds nothing.
func joinWhere(where, name string) string {
	switch {
	case name == "":
		return where
	case where == "":
		return name
	}
	return where + "." + name
}

// ExpandEnv replaces ${NAME} in s with the value of the environment variable NAME.
// An unset variable is an error naming it; "$${" stands for a literal "${".
func ExpandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unclosed \"${\" (write \"$${\" for a literal \"${\")")
		}
		name := s[i+2 : i+end]
		if !configEnvVarRE.MatchString(name) {
			return "", fmt.Errorf("%q is not an environment variable name", name)
		}
		val, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

// FormatFromPath returns the format implied by a file's extension, in any
// case: ".yml" and ".yaml" give "yml", ".json" gives "json", anything else
// "text".
func FormatFromPath(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yml", ".yaml":
		return "yml"
	case ".json":
		return "json"
	default:
		return "text"
	}
}
