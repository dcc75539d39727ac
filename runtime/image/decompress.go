package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how an archive is compressed, told by its first bytes
// (not its name, which may lie).
type Compression string

const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Xz   Compression = "xz"
	Zstd Compression = "zstd"
)

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// decompressor is a decompressed stream and what it must free.
type decompressor struct {
	io.Reader
	c     Compression
	close func()
}

// decompress sniffs r's compression and returns the decompressed stream.
// Close it to free a zstd decoder's goroutines. An image layer may only
// be gzip, zstd or plain, its media types: xz, whose decoder takes the
// dictionary size a stream asks for (up to GiBs), is for archives the
// operator names.
func decompress(r io.Reader, layer bool) (*decompressor, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	c := None
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			c = m.c
			break
		}
	}
	if layer && c == Xz {
		return nil, errors.New("an xz-compressed layer (OCI layers are gzip, zstd or plain tar)")
	}
	d := &decompressor{c: c, close: func() {}}
	switch c {
	case Gzip:
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		d.Reader = z
	case Xz:
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		d.Reader = z
	case Zstd:
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		d.Reader, d.close = z, z.Close
	default:
		d.Reader = br
	}
	return d, nil
}

func (d *decompressor) Close() { d.close() }

// drain reads what follows the tar stream's end to the end of the
// compressed stream, so that its checksum (gzip's CRC, a digest being
// verified underneath) is checked, and refuses more than max bytes of it.
func drain(r io.Reader, max int64) error {
	n, err := io.Copy(io.Discard, io.LimitReader(r, max+1))
	if err != nil {
		return err
	}
	if n > max {
		return fmt.Errorf("more than %s of data after the archive's end", HumanBytes(max))
	}
	return nil
}
