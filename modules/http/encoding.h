/* modules/http/encoding.h — which precompressed sibling a request gets,
 * from its Accept-Encoding (encoding.c).  Pure: bytes in, a choice out. */
#ifndef HTTP_ENCODING_H
#define HTTP_ENCODING_H

enum http_coding {
    HTTP_CODING_IDENTITY,
    HTTP_CODING_GZIP,           /* X.gz */
    HTTP_CODING_BR,             /* X.br */
    HTTP_CODINGS
};

#define HTTP_HAVE(coding) (1u << (coding))

/* The coding to send, among identity and those in have (HTTP_HAVE bits),
 * for an Accept-Encoding value (NULL: the field is absent).  The highest
 * q wins; at equal q br before gzip before identity.  Identity is
 * returned when nothing else is acceptable, even if the field refused it
 * (see encoding.c for why). */
enum http_coding http_coding_choose(const char *accept_encoding, unsigned have);

/* "gzip", "br" (NULL for identity) and the sibling's suffix ".gz", ".br". */
const char *http_coding_name(enum http_coding c);
const char *http_coding_suffix(enum http_coding c);

#endif
