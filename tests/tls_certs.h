/* tests/tls_certs.h — throwaway certificates for the TLS tests, made at
 * test time with the openssl command (no private key is ever committed).
 *
 * tls_certs_make(dir) writes into dir:
 *   ca.pem                 a root CA (ECDSA P-256), the one clients trust
 *   ec.pem ec.key          localhost / 127.0.0.1 / ::1, ECDSA P-256, signed by ca
 *   rsa.pem rsa.key        the same names, RSA 2048, signed by ca
 *   chain.pem chain.key    a leaf signed by an intermediate: leaf, then the
 *                          intermediate (the right order)
 *   badchain.pem           leaf, root, intermediate: out of order
 *   expired.pem            a certificate for ec.key that expired yesterday
 *   other.pem other.key    a certificate for "other.example" only
 * 0, or -1 (the openssl command failed; its output is on stderr). */
#ifndef ASYNC_TESTS_TLS_CERTS_H
#define ASYNC_TESTS_TLS_CERTS_H

#include <stdio.h>
#include <stdlib.h>

static const char tls_certs_script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "q() { \"$@\" >/dev/null 2>openssl.err || { cat openssl.err >&2; exit 1; }; }\n"
    "ec() { q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout \"$1\" "
    "-out \"$2\" -subj \"$3\"; }\n"
    "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > ca.ext\n"
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\\nextendedKeyUsage=serverAuth\\n"
    "crlDistributionPoints=URI:http://ca.invalid/ca.crl\\n' > leaf.ext\n"
    "printf 'subjectAltName=DNS:other.example\\nextendedKeyUsage=serverAuth\\n' > other.ext\n"
    "q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
    "-out ca.pem -days 400 -subj /CN=async_io-test-ca\n"
    "sign() { q openssl x509 -req -in \"$1\" -CA \"$2\" -CAkey \"$3\" -CAcreateserial -out \"$4\" "
    "-days \"$5\" -extfile \"$6\"; }\n"
    "ec ec.key ec.csr /CN=localhost\n"
    "sign ec.csr ca.pem ca.key ec.pem 200 leaf.ext\n"
    "sign ec.csr ca.pem ca.key expired.pem -1 leaf.ext\n"
    "q openssl req -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.csr -subj /CN=localhost\n"
    "sign rsa.csr ca.pem ca.key rsa.pem 200 leaf.ext\n"
    "ec other.key other.csr /CN=other.example\n"
    "sign other.csr ca.pem ca.key other.pem 30 other.ext\n"
    "ec inter.key inter.csr /CN=async_io-test-intermediate\n"
    "sign inter.csr ca.pem ca.key inter.pem 300 ca.ext\n"
    "ec chain.key leaf2.csr /CN=localhost\n"
    "sign leaf2.csr inter.pem inter.key leaf2.pem 200 leaf.ext\n"
    "cat leaf2.pem inter.pem > chain.pem\n"
    "cat leaf2.pem ca.pem inter.pem > badchain.pem\n"
    "rm -f *.csr *.srl openssl.err\n";

static inline int tls_certs_make(const char *where)
{
    char cmd[sizeof(tls_certs_script) + 4200];
    FILE *f;
    char path[4096];
    int rc;

    snprintf(path, sizeof(path), "%s/make-certs.sh", where);
    if ((f = fopen(path, "w")) == NULL)
        return -1;
    fputs(tls_certs_script, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", path, where);
    rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

#endif
