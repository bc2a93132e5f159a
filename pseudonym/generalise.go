package pseudonym

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Unit is how coarse a generalised date is.
type Unit int

// Units of GeneraliseDate.
const (
	Day Unit = iota
	Week
	Month
	Year
)

// GeneraliseDate returns t, in UTC, as a day ("2026-11-24"), an ISO week
// ("2026-W48"), a month ("2026-11") or a year ("2026").
func GeneraliseDate(t time.Time, u Unit) (string, error) {
	t = t.UTC()
	switch u {
	case Day:
		return t.Format("2006-01-02"), nil
	case Week:
		y, w := t.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w), nil
	case Month:
		return t.Format("2006-01"), nil
	case Year:
		return t.Format("2006"), nil
	}
	return "", fmt.Errorf("%w: unknown date unit %d", ErrInvalid, u)
}

// GeneraliseNumber returns the range of the given width that holds x, as
// "[lo,hi)": 37.5 with width 10 is "[30,40)". Width must be positive and
// x finite.
func GeneraliseNumber(x, width float64) (string, error) {
	if !(width > 0) || math.IsInf(width, 0) {
		return "", fmt.Errorf("%w: width must be a positive number", ErrInvalid)
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "", fmt.Errorf("%w: not a finite number", ErrInvalid)
	}
	lo := math.Floor(x/width) * width
	return fmt.Sprintf("[%g,%g)", lo, lo+width), nil
}

// AgeBand returns the band of the given width that holds age: 37 with
// width 10 is "30-39". Ages from 90 up share the band "90+".
func AgeBand(age, width int) (string, error) {
	if width <= 0 {
		return "", fmt.Errorf("%w: width must be positive", ErrInvalid)
	}
	if age < 0 || age > 150 {
		return "", fmt.Errorf("%w: age %d out of range", ErrInvalid, age)
	}
	if age >= 90 {
		return "90+", nil
	}
	lo := age / width * width
	return fmt.Sprintf("%d-%d", lo, min(lo+width-1, 89)), nil
}

// GeneralisePostcode keeps the first keep characters of a postcode (after
// removing spaces and upper-casing) and replaces the rest with one "*":
// "40126" with keep 3 is "401*".
func GeneralisePostcode(postcode string, keep int) (string, error) {
	pc := strings.ToUpper(strings.Join(strings.Fields(postcode), ""))
	if pc == "" || !utf8.ValidString(pc) {
		return "", fmt.Errorf("%w: empty postcode", ErrInvalid)
	}
	if keep < 0 {
		return "", fmt.Errorf("%w: keep must not be negative", ErrInvalid)
	}
	if keep >= utf8.RuneCountInString(pc) {
		return pc, nil
	}
	r := []rune(pc)
	return string(r[:keep]) + "*", nil
}
