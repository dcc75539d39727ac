package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Downloads are written to DIR/downloads/KEY.part, which only a verified
// checksum turns into anything: an interrupted download is resumed from
// where it stopped (an HTTP Range request), and restarted from the
// beginning when the server does not resume or the resumed file does not
// match.

// ChecksumError is a download whose SHA-256 is not the pinned one.
type ChecksumError struct {
	URL       string
	Got, Want string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("download %s: checksum mismatch: got sha256:%s, want sha256:%s (the download was deleted)", e.URL, e.Got, e.Want)
}

// retryable marks a failure that another attempt may get past: a
// connection cut, a stall, a server error.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

var errStalled = errors.New("no data for too long")

// newHTTPClient is the client for downloads: bounded redirects, never
// from https down to http, and time limits on connecting and on the
// server's answer (the body's own limit is the stall timeout).
func newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

const maxRedirects = 5

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects (a redirect loop?)", maxRedirects)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect from https to %s refused", req.URL.Scheme)
	}
	return nil
}

// download fetches url into part, resuming what is there, and checks its
// SHA-256 against want (hex). It returns once part holds exactly the
// pinned file; on a mismatch part is deleted.
func (c *Cache) download(ctx context.Context, url, want, part string, base Progress, progress ProgressFunc) error {
	restarted := false
	for attempt := 0; ; attempt++ {
		resumed, err := c.fetchOnce(ctx, url, part, base, progress)
		if err == nil {
			got, herr := c.hashFile(ctx, part, base, progress)
			if herr != nil {
				return herr
			}
			if got == want {
				return nil
			}
			_ = os.Remove(part) // wrong bytes are never kept
			if resumed && !restarted {
				// The server's file may have changed under the resumed part:
				// once more, from the beginning.
				c.Log.Warn().Str("url", url).Msg("checksum mismatch after resuming a download; restarting it from the beginning")
				restarted = true
				continue
			}
			return &ChecksumError{URL: url, Got: got, Want: want}
		}
		var r retryable
		if !errors.As(err, &r) || attempt >= c.Retries || ctx.Err() != nil {
			return fmt.Errorf("download %s: %w", url, err)
		}
		wait := c.Backoff << attempt
		c.Log.Warn().Err(err).Str("url", url).Int("attempt", attempt+1).Float64("retry_in_ms", float64(wait.Microseconds())/1000).Msg("download interrupted; resuming")
		select {
		case <-ctx.Done():
			return fmt.Errorf("download %s: %w", url, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// probe checks that the server of rawURL (or the proxy the environment
// names for it) accepts a TCP connection within ProbeTimeout, name lookup
// included. It is auto's test for being offline: no DNS, no route, or a
// network that swallows packets all fail it within the timeout, where a
// download would wait out its longer limits and retry.
func (c *Cache) probe(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	target := u
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p != nil {
		target = p
	}
	host := target.Host
	if target.Port() == "" {
		port := "443"
		if target.Scheme == "http" {
			port = "80"
		}
		host = net.JoinHostPort(target.Hostname(), port)
	}
	timeout := c.ProbeTimeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("%s cannot be reached (offline?): %w", host, err)
	}
	_ = conn.Close() // reachable: that is all a probe asks
	return nil
}

// DefaultProbeTimeout bounds auto's check that the Ubuntu mirror can be
// reached: name lookup and TCP connect, which take well under a second
// where there is a network.
const DefaultProbeTimeout = 3 * time.Second

// fetchOnce makes one request, appending to part from its current size.
// It reports whether it resumed.
func (c *Cache) fetchOnce(ctx context.Context, url, part string, base Progress, progress ProgressFunc) (bool, error) {
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return false, err
	}
	defer f.Close()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return false, classifyDialError(err)
	}
	defer resp.Body.Close()
	resumed := false
	switch resp.StatusCode {
	case http.StatusOK:
		if off > 0 {
			c.Log.Info().Str("url", url).Msg("the server does not resume downloads; restarting from the beginning")
			if err := restart(f); err != nil {
				return false, err
			}
			off = 0
		}
	case http.StatusPartialContent:
		start, err := contentRangeStart(resp.Header.Get("Content-Range"))
		if err != nil || start != off {
			_ = restart(f) // the next attempt starts over
			return false, retryable{fmt.Errorf("resume: Content-Range %q does not start at %d", resp.Header.Get("Content-Range"), off)}
		}
		resumed = true
	case http.StatusRequestedRangeNotSatisfiable:
		// What we have is as long as the file or longer: check it, and
		// start over if it is not right.
		if off > 0 {
			return true, nil
		}
		return false, fmt.Errorf("GET: %s", resp.Status)
	default:
		err := fmt.Errorf("GET: %s", resp.Status)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return false, retryable{err}
		}
		return false, err
	}
	total := int64(0)
	if resp.ContentLength >= 0 {
		total = off + resp.ContentLength
		if total > c.Limits.MaxDownload {
			return false, fmt.Errorf("file of %s is larger than the %s limit", HumanBytes(total), HumanBytes(c.Limits.MaxDownload))
		}
	}
	m := newMeter(progress, base, PhaseDownloading, total)
	m.set(off)
	stall := time.AfterFunc(c.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	body := &stallReader{r: resp.Body, t: stall, d: c.StallTimeout}
	limit := c.Limits.MaxDownload - off
	n, err := io.Copy(f, &countingReader{r: io.LimitReader(body, limit+1), m: m})
	m.end()
	if err == nil && n > limit {
		return false, fmt.Errorf("file is larger than the %s limit", HumanBytes(c.Limits.MaxDownload))
	}
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = fmt.Errorf("%w (%s)", errStalled, c.StallTimeout)
		}
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errStalled) {
			return resumed, ctx.Err()
		}
		return resumed, retryable{fmt.Errorf("connection cut after %s of %s: %w", HumanBytes(off+n), sizeOrUnknown(total), err)}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return resumed, retryable{fmt.Errorf("connection cut after %s of %s", HumanBytes(off+n), sizeOrUnknown(total))}
	}
	return resumed, f.Sync()
}

func sizeOrUnknown(n int64) string {
	if n <= 0 {
		return "an unknown size"
	}
	return HumanBytes(n)
}

func restart(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// contentRangeStart parses "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, error) {
	s, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, errors.New("not a byte range")
	}
	a, _, ok := strings.Cut(s, "-")
	if !ok {
		return 0, errors.New("no range")
	}
	return strconv.ParseInt(a, 10, 64)
}

// classifyDialError marks a failure to reach the server retryable, unless
// the name does not resolve at all or a redirect was refused.
func classifyDialError(err error) error {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return err
	}
	if strings.Contains(err.Error(), "redirect") {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return retryable{err}
}

// stallReader pushes the stall timer back at every read that returns
// bytes.
type stallReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.t.Reset(s.d)
	}
	return n, err
}

// hashFile is the hex SHA-256 of the file at p.
func (c *Cache) hashFile(ctx context.Context, p string, base Progress, progress ProgressFunc) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	m := newMeter(progress, base, PhaseVerifying, fi.Size())
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, &countingReader{r: f, m: m}}); err != nil {
		return "", fmt.Errorf("verify %s: %w", p, err)
	}
	m.end()
	return hex.EncodeToString(h.Sum(nil)), nil
}
