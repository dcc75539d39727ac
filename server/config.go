package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Defaults for the zero fields of Config. They live here and nowhere else:
// flags and environment variables start from DefaultConfig.
const (
	DefaultMaxFrame       = 64 << 10
	DefaultTitle          = "playground"
	DefaultInitTimeout    = 10 * time.Second
	DefaultStartTimeout   = 60 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultCloseGrace     = time.Second
	DefaultIdleTimeout    = 30 * time.Minute
	DefaultMaxLifetime    = 4 * time.Hour
	DefaultReconnectGrace = 5 * time.Minute

	DefaultMaxSessionsPerClient = 10
	DefaultMaxWatchersPerClient = 50
	DefaultConnRate             = 2.0 // new connections per second per client address
	DefaultConnBurst            = 20

	// minMaxFrame leaves room for an init frame with a token and extension
	// fields; maxMaxFrame keeps a single message's memory small.
	minMaxFrame = 1 << 10
	maxMaxFrame = 16 << 20
)

// Config is the server's configuration. A zero field means its default;
// DefaultConfig returns them all filled in.
type Config struct {
	// AllowedOrigins are origins allowed to open /ws besides the server's own
	// host, in "https://host:port" form (the port may be left out for the
	// scheme's default). "*" allows any origin: only for development, since
	// it lets any web site drive a logged-in user's terminal, and refused
	// together with any credential.
	AllowedOrigins []string
	// AllowedHosts are host names (no port) the server answers to besides
	// the address a connection came in on, "localhost", and 127.0.0.1 and
	// ::1 on a loopback connection. A request for any other Host gets 403:
	// a page on a foreign name that resolves to this server (DNS
	// rebinding) gets nothing. Put here the name the server is reached by.
	AllowedHosts []string
	// MaxFrame is the largest WebSocket message accepted, in bytes; a larger
	// one closes the connection with 1009. Default 64 KiB.
	MaxFrame int64
	// Credential is "user:pass" for HTTP basic auth, as ttyd's -c. When set,
	// every endpoint but the probes and /metrics needs it, and the init
	// frame's AuthToken must be the token /token serves.
	Credential string
	// Token is a shared secret, as Jupyter's: a request carries it as
	// ?token= (which sets an HttpOnly SameSite=Strict cookie), the cookie,
	// "Authorization: Bearer", or a WebSocket's init AuthToken. When set,
	// every endpoint but the probes and /metrics needs it.
	Token string
	// AuthHeader names a request header that carries the user's name, set
	// by an authenticating reverse proxy (oauth2-proxy's
	// X-Forwarded-User). It is believed only from TrustedProxies; such a
	// request is authenticated.
	AuthHeader string
	// AdminToken guards /api ("Authorization: Bearer TOKEN"); it also
	// authenticates everywhere else. Empty turns the admin API off.
	AdminToken string
	// TrustedProxies are the addresses (CIDRs or single IPs) of reverse
	// proxies whose X-Forwarded-For and AuthHeader are believed.
	TrustedProxies []string
	// RouteID names this server among several behind one proxy: SESSION
	// carries it ("route"), every response has it as X-Playground-Route,
	// and a client reconnects with /ws?route=ID so the proxy sends it
	// here. Empty: none.
	RouteID string
	// Routed says this server is one of several behind a routing proxy:
	// a /ws request without a route (a new session) is turned away with
	// HTTP 503 at its handshake while the server drains or is at
	// capacity, so that the proxy can try the next server. Otherwise a
	// new session is refused after its init as the protocol says, with
	// 1001 while draining and 1013 at capacity.
	Routed bool
	// Title is the window title sent at session start. Default "playground".
	Title string
	// Preferences are the xterm.js options sent at session start
	// (SET_PREFERENCES), e.g. {"fontSize": 16}. Nil sends {}.
	Preferences map[string]any
	// MaxSessions caps the sessions open at once, detached ones included;
	// one more is closed with 1013, and /readyz says 503 at the cap.
	// Default: DefaultMaxSessions(), from the machine's memory and cores.
	MaxSessions int
	// MaxSessionsPerClient caps the sessions of one client address; one
	// more is closed with 1008. Default 10; -1 means no cap.
	MaxSessionsPerClient int
	// MaxWatchersPerClient caps the watchers of one client address, over
	// all sessions; one more is closed with 1008. Without it, a client
	// could open watchers at the connection rate for as long as a session
	// lives (28,800 in the default 4 hours, each in the server's memory
	// and in every output frame's fan-out). Default 50; -1 means no cap.
	MaxWatchersPerClient int
	// ConnRate is how many WebSocket connections per second a client
	// address may open, with bursts of ConnBurst; more are closed with
	// 1008. Default 2 a second, bursts of 20; -1 means no limit.
	ConnRate  float64
	ConnBurst int
	// IdleTimeout ends a session that got no input for this long, with a
	// NOTICE a minute before. Default 30 min; -1 means never.
	IdleTimeout time.Duration
	// MaxLifetime ends a session this long after it started, with a NOTICE
	// a minute before. Default 4 h; -1 means never.
	MaxLifetime time.Duration
	// ReconnectGrace is how long a session whose client left stays alive,
	// detached, for a resume. Default 5 min; -1 means not at all.
	ReconnectGrace time.Duration
	// InitTimeout is how long a new WebSocket may take to send its init frame
	// before it is closed with 1002. Default 10 s.
	InitTimeout time.Duration
	// StartTimeout bounds StartFunc; a start that takes longer is abandoned
	// and the client gets 1011. Default 60 s: the first start may unpack a
	// root file system.
	StartTimeout time.Duration
	// WriteTimeout bounds every write to a client. A client that does not
	// take a frame within it is cut off. Default 10 s.
	WriteTimeout time.Duration
	// PingInterval is how often the server pings each client. A client that
	// sends nothing, not even a pong, for two intervals while the server
	// has nothing queued for it is cut off, which is how dead connections
	// are found. Default 20 s.
	PingInterval time.Duration
	// CloseGrace is how long the server waits for the client to answer its
	// close frame before dropping the connection. Default 1 s.
	CloseGrace time.Duration
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.Title == "" {
		c.Title = DefaultTitle
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions()
	}
	if c.MaxSessionsPerClient == 0 {
		c.MaxSessionsPerClient = DefaultMaxSessionsPerClient
	}
	if c.MaxWatchersPerClient == 0 {
		c.MaxWatchersPerClient = DefaultMaxWatchersPerClient
	}
	if c.ConnRate == 0 {
		c.ConnRate = DefaultConnRate
	}
	if c.ConnBurst == 0 {
		c.ConnBurst = DefaultConnBurst
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.IdleTimeout, DefaultIdleTimeout},
		{&c.MaxLifetime, DefaultMaxLifetime},
		{&c.ReconnectGrace, DefaultReconnectGrace},
		{&c.InitTimeout, DefaultInitTimeout},
		{&c.StartTimeout, DefaultStartTimeout},
		{&c.WriteTimeout, DefaultWriteTimeout},
		{&c.PingInterval, DefaultPingInterval},
		{&c.CloseGrace, DefaultCloseGrace},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return c
}

// Validate reports every field that is out of range, together.
func (c Config) Validate() error {
	var errs []error
	anyOrigin := false
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			anyOrigin = true
			continue
		}
		if _, err := normalizeOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("allowed origin %q: %w", o, err))
		}
	}
	if anyOrigin && (c.Credential != "" || c.Token != "" || c.AuthHeader != "" || c.AdminToken != "") {
		errs = append(errs, errors.New(`allowed origin "*" with a credential: any web site could use a visitor's credential to open a shell; name the origins instead`))
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") && !isIPv6(h) {
			errs = append(errs, fmt.Errorf("allowed host %q: want a host name or address, without scheme or port", h))
		}
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.MaxFrame != 0 && (c.MaxFrame < minMaxFrame || c.MaxFrame > maxMaxFrame) {
		errs = append(errs, fmt.Errorf("max frame %d: want %d to %d bytes", c.MaxFrame, minMaxFrame, maxMaxFrame))
	}
	if c.Credential != "" {
		if user, _, ok := strings.Cut(c.Credential, ":"); !ok || user == "" {
			errs = append(errs, errors.New(`credential: want "user:pass"`))
		}
	}
	if c.AuthHeader != "" && len(c.TrustedProxies) == 0 {
		errs = append(errs, errors.New("auth header: needs trusted proxies, the only ones it is believed from"))
	}
	if _, err := json.Marshal(c.Preferences); err != nil {
		errs = append(errs, fmt.Errorf("preferences: %w", err))
	}
	if c.MaxSessions < 0 {
		errs = append(errs, fmt.Errorf("max sessions %d: want 1 or more (0: from the machine's size)", c.MaxSessions))
	}
	if c.MaxSessionsPerClient < -1 {
		errs = append(errs, fmt.Errorf("max sessions per client %d: want 1 or more, or -1 for no cap", c.MaxSessionsPerClient))
	}
	if c.MaxWatchersPerClient < -1 {
		errs = append(errs, fmt.Errorf("max watchers per client %d: want 1 or more, or -1 for no cap", c.MaxWatchersPerClient))
	}
	if c.ConnRate < 0 && c.ConnRate != -1 {
		errs = append(errs, fmt.Errorf("connection rate %v: want more than 0, or -1 for no limit", c.ConnRate))
	}
	if c.ConnBurst < 0 {
		errs = append(errs, fmt.Errorf("connection burst %d: must not be negative", c.ConnBurst))
	}
	for _, d := range []struct {
		name     string
		v        time.Duration
		minusOne bool // -1 means "never"
	}{
		{"idle timeout", c.IdleTimeout, true},
		{"max lifetime", c.MaxLifetime, true},
		{"reconnect grace", c.ReconnectGrace, true},
		{"init timeout", c.InitTimeout, false},
		{"start timeout", c.StartTimeout, false},
		{"write timeout", c.WriteTimeout, false},
		{"ping interval", c.PingInterval, false},
		{"close grace", c.CloseGrace, false},
	} {
		if d.v < 0 && !(d.minusOne && d.v == -1) {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

func isIPv6(h string) bool {
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && a.Is6()
}

// parsePrefixes parses CIDRs and single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
