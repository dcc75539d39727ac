package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"
)

// newLogger logs JSON lines by default, or for people with format "console".
// The level is valid: Validate checked it.
func newLogger(format, level string, w io.Writer) zerolog.Logger {
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
