package server

import (
	"net/http/httptest"
	"testing"
)

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"https://Class.Example", "https://class.example:443", false},
		{"http://class.example", "http://class.example:80", false},
		{"http://class.example:8080/", "http://class.example:8080", false},
		{"HTTP://[::1]:8080", "http://[::1]:8080", false},
		{"https://[::1]", "https://[::1]:443", false},
		{"null", "", true},
		{"file://", "", true},
		{"https://", "", true},
		{"https://a.example/path", "", true},
		{"https://user@a.example", "", true},
		{"https://a.example?q", "", true},
		{"::", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := normalizeOrigin(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("normalizeOrigin(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestOriginCheck(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		host    string
		origin  string
		want    bool
	}{
		{"no origin", nil, "play.example", "", true},
		{"same host", nil, "play.example", "https://play.example", true},
		{"same host and port", nil, "play.example:8080", "http://play.example:8080", true},
		{"same host default port", nil, "play.example:443", "https://play.example", true},
		{"same host, case", nil, "PLAY.example", "https://play.EXAMPLE", true},
		{"other port", nil, "play.example:8080", "http://play.example:8081", false},
		{"other host", nil, "play.example", "https://evil.example", false},
		{"suffix trick", nil, "play.example", "https://play.example.evil.example", false},
		{"allowed", []string{"https://class.example"}, "play.example", "https://class.example", true},
		{"allowed, wrong scheme", []string{"https://class.example"}, "play.example", "http://class.example", false},
		{"any", []string{"*"}, "play.example", "https://evil.example", true},
		{"null", nil, "play.example", "null", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newOriginPolicy(tt.allowed)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "http://"+tt.host+"/ws", nil)
			r.Host = tt.host
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if err := p.check(r); (err == nil) != tt.want {
				t.Errorf("check(Host %q, Origin %q) = %v, want allowed %v", tt.host, tt.origin, err, tt.want)
			}
		})
	}
}
