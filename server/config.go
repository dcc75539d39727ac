package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults for the zero fields of Config. They live here and nowhere else:
// flags and environment variables start from DefaultConfig.
const (
	DefaultMaxFrame     = 64 << 10
	DefaultTitle        = "playground"
	DefaultInitTimeout  = 10 * time.Second
	DefaultStartTimeout = 60 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultPingInterval = 20 * time.Second
	DefaultCloseGrace   = time.Second

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
	// it lets any web site drive a logged-in user's terminal.
	AllowedOrigins []string
	// MaxFrame is the largest WebSocket message accepted, in bytes; a larger
	// one closes the connection with 1009. Default 64 KiB.
	MaxFrame int64
	// Credential is "user:pass" for HTTP basic auth, as ttyd's -c. When set,
	// every endpoint but /healthz needs it, and the init frame's AuthToken
	// must be the token /token serves. Empty turns auth off.
	Credential string
	// Title is the window title sent at session start. Default "playground".
	Title string
	// Preferences are the xterm.js options sent at session start
	// (SET_PREFERENCES), e.g. {"fontSize": 16}. Nil sends {}.
	Preferences map[string]any
	// MaxSessions caps the open sessions; one more is closed with 1013.
	// Zero means no cap.
	MaxSessions int
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
	// sends nothing, not even a pong, for two intervals is cut off, which is
	// how dead connections are found. Default 20 s.
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
	if c.InitTimeout == 0 {
		c.InitTimeout = DefaultInitTimeout
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.CloseGrace == 0 {
		c.CloseGrace = DefaultCloseGrace
	}
	return c
}

// Validate reports every field that is out of range, together.
func (c Config) Validate() error {
	var errs []error
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		if _, err := normalizeOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("allowed origin %q: %w", o, err))
		}
	}
	if c.MaxFrame != 0 && (c.MaxFrame < minMaxFrame || c.MaxFrame > maxMaxFrame) {
		errs = append(errs, fmt.Errorf("max frame %d: want %d to %d bytes", c.MaxFrame, minMaxFrame, maxMaxFrame))
	}
	if c.Credential != "" {
		if user, _, ok := strings.Cut(c.Credential, ":"); !ok || user == "" {
			errs = append(errs, errors.New(`credential: want "user:pass"`))
		}
	}
	if _, err := json.Marshal(c.Preferences); err != nil {
		errs = append(errs, fmt.Errorf("preferences: %w", err))
	}
	if c.MaxSessions < 0 {
		errs = append(errs, fmt.Errorf("max sessions %d: want 0 (no cap) or more", c.MaxSessions))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"init timeout", c.InitTimeout},
		{"start timeout", c.StartTimeout},
		{"write timeout", c.WriteTimeout},
		{"ping interval", c.PingInterval},
		{"close grace", c.CloseGrace},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}
