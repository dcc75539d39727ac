package server

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" for valid
	}{
		{"zero", Config{}, ""},
		{"defaults", DefaultConfig(), ""},
		{"full", Config{
			AllowedOrigins: []string{"https://class.example", "http://localhost:8080"},
			MaxFrame:       1 << 20, Credential: "u:p", Title: "t",
			Preferences: map[string]any{"fontSize": 16}, MaxSessions: 100,
			InitTimeout: time.Second, StartTimeout: time.Second, WriteTimeout: time.Second,
			PingInterval: time.Second, CloseGrace: time.Second,
		}, ""},
		{"origin with path", Config{AllowedOrigins: []string{"https://class.example/page"}}, "allowed origin"},
		{"origin without scheme", Config{AllowedOrigins: []string{"class.example"}}, "allowed origin"},
		{"origin ws scheme", Config{AllowedOrigins: []string{"ws://class.example"}}, "allowed origin"},
		{"frame too small", Config{MaxFrame: 10}, "max frame"},
		{"frame too large", Config{MaxFrame: 1 << 30}, "max frame"},
		{"credential without colon", Config{Credential: "user"}, "credential"},
		{"credential without user", Config{Credential: ":pass"}, "credential"},
		{"preferences not JSON", Config{Preferences: map[string]any{"x": math.Inf(1)}}, "preferences"},
		{"negative sessions", Config{MaxSessions: -1}, "max sessions"},
		{"negative timeout", Config{WriteTimeout: -time.Second}, "write timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if got := errText(err); (tt.wantErr == "") != (err == nil) || !strings.Contains(got, tt.wantErr) {
				t.Errorf("Validate() = %q, want an error containing %q", got, tt.wantErr)
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	err := Config{MaxFrame: 1, Credential: "x", MaxSessions: -1}.Validate()
	for _, want := range []string{"max frame", "credential", "max sessions"} {
		if !strings.Contains(errText(err), want) {
			t.Errorf("Validate() = %q, want it to mention %q", errText(err), want)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.MaxFrame != 64<<10 || c.Title != "playground" || c.WriteTimeout == 0 || c.PingInterval == 0 || c.CloseGrace == 0 {
		t.Errorf("DefaultConfig() = %+v: defaults missing", c)
	}
	if c.withDefaults().MaxFrame != c.MaxFrame {
		t.Error("withDefaults changed a filled-in config")
	}
}
