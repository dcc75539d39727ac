package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Log formats: "auto" is console for a person at a terminal, JSON lines
// for anything else (a file, a pipe, journald, a log collector).
const (
	logAuto    = "auto"
	logJSON    = "json"
	logConsole = "console"
)

// checkLogFormat is the --log-format check.
func checkLogFormat(f string) error {
	switch f {
	case logAuto, logJSON, logConsole:
		return nil
	}
	return fmt.Errorf("--log-format %q: want auto, json or console", f)
}

// newLogger logs JSON lines, or for people with format "console", or picks
// by whether w is a terminal with "auto". Colour only goes to a terminal.
// The level is valid: Validate checked it.
//
// Durations are logged in milliseconds, as floats, and their fields are
// named *_ms ("spawn_ms", "duration_ms") so that the unit is in the name.
func newLogger(format, level string, w io.Writer) zerolog.Logger {
	tty := writerIsTerminal(w)
	if format == logAuto {
		format = logJSON
		if tty {
			format = logConsole
		}
	}
	if format == logConsole {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !tty}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

func writerIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}
