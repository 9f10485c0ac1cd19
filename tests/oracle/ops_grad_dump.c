/* ops_grad_dump.c — test helper: run one op's forward and backward (the
 * fast versions of lm/ops.h) on inputs that ops_grad_oracle.py wrote as raw
 * little-endian files, and write the outputs and gradients back as raw
 * float32, for the oracle to compare with torch autograd.
 *
 *   ops_grad_dump OP DIR ARGS...
 *
 * OP and ARGS (sizes; reads DIR/<name>.f32 / .i32 / .u16, writes
 * DIR/<name>.out.f32):
 *   embedding N D VOCAB N_POS FIRST_POS   tokens.i32 wte wpe dout -> y dwte dwpe dinput
 *   layernorm N D EPS                     x gamma beta dy -> y dx dgamma dbeta
 *   rmsnorm N D EPS                       x w dy -> y dx dw
 *   linear N IN OUT LAYOUT                x w b dy -> y dx dw db   (LAYOUT 0 [in,out], 1 [out,in])
 *   linear_half N IN OUT LAYOUT DTYPE     x w.u16 dy -> dx         (DTYPE bf16 | f16)
 *   gelu N / silu N                       x dy -> y dx
 *   swiglu N                              gate up dy -> y dgate dup
 *   rope N N_HEADS D_HEAD FIRST_POS THETA x dy -> y dx
 *   attention N N_HEADS N_KV D_HEAD       q k v dout -> y lse dq dk dv
 *   xent N D VOCAB ROW_CHUNK VOCAB_CHUNK  h w targets.i32 -> loss (sum, count) dh dw
 *                                         (gradient of the mean over unmasked rows)
 * Every gradient buffer starts at zero. Exit 0 when all went well, 1 with a
 * message otherwise, 2 for bad usage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainalign/kernels/kernels.h"
#include "brainalign/lm/ops.h"

static const char *dir;

/* Every buffer, freed at the end (so that leak checkers stay quiet). */
static void *owned[64];
static int n_owned;

static void *own(void *p)
{
    if (!p || n_owned == (int)(sizeof owned / sizeof *owned)) {
        fprintf(stderr, "ops_grad_dump: out of memory\n");
        exit(1);
    }
    return owned[n_owned++] = p;
}

static void die(const char *what)
{
    fprintf(stderr, "ops_grad_dump: %s\n", what);
    exit(1);
}

static void *read_raw(const char *name, size_t elem, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    void *buf = own(calloc(n ? n : 1, elem));
    size_t got = fread(buf, elem, n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != n || extra != EOF) {
        fprintf(stderr, "ops_grad_dump: %s: expected %zu elements of %zu bytes\n", path, n, elem);
        exit(1);
    }
    return buf;
}

static float *in_f32(const char *name, size_t n)
{
    char file[256];
    snprintf(file, sizeof file, "%s.f32", name);
    return read_raw(file, sizeof(float), n);
}

static float *zeros(size_t n)
{
    return own(calloc(n ? n : 1, sizeof(float)));
}

static void out_f32(const char *name, const float *x, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.out.f32", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n) die(path);
    if (fclose(f) != 0) die(path);
}

static size_t arg(char **argv, int i) { return (size_t)strtoull(argv[i], NULL, 10); }

static void check(ba_status rc, const ba_error *err)
{
    if (rc != BA_OK) die(err->message);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ops_grad_dump OP DIR ARGS...\n");
        return 2;
    }
    const char *op = argv[1];
    dir = argv[2];
    ba_error err;
    ba_error_clear(&err);
#define NEED(k)                                                                         \
    do {                                                                                \
        if (argc != 3 + (k)) {                                                          \
            fprintf(stderr, "ops_grad_dump %s: expected %d arguments after DIR\n", op, k); \
            return 2;                                                                   \
        }                                                                               \
    } while (0)

    if (!strcmp(op, "embedding")) {
        NEED(5);
        size_t n = arg(argv, 3), d = arg(argv, 4), vocab = arg(argv, 5), n_pos = arg(argv, 6),
               first = arg(argv, 7);
        int32_t *tokens = read_raw("tokens.i32", sizeof(int32_t), n);
        float *wte = in_f32("wte", vocab * d), *wpe = in_f32("wpe", n_pos * d);
        float *dout = in_f32("dout", n * d);
        float *y = zeros(n * d), *dwte = zeros(vocab * d), *dwpe = zeros(n_pos * d),
              *din = zeros(n * d);
        check(ba_embedding_fwd(tokens, n, wte, vocab, wpe, n_pos, first, d, y, &err), &err);
        check(ba_embedding_backward(dout, tokens, n, d, vocab, n_pos, first, dwte, dwpe, din, &err),
              &err);
        out_f32("y", y, n * d), out_f32("dwte", dwte, vocab * d), out_f32("dwpe", dwpe, n_pos * d),
            out_f32("dinput", din, n * d);
    } else if (!strcmp(op, "layernorm") || !strcmp(op, "rmsnorm")) {
        NEED(3);
        bool ln = !strcmp(op, "layernorm");
        size_t n = arg(argv, 3), d = arg(argv, 4);
        float eps = strtof(argv[5], NULL);
        float *x = in_f32("x", n * d), *dy = in_f32("dy", n * d);
        float *gamma = in_f32(ln ? "gamma" : "w", d), *beta = ln ? in_f32("beta", d) : NULL;
        float *y = zeros(n * d), *dx = zeros(n * d), *dg = zeros(d), *db = zeros(d);
        float *mean = zeros(n), *rstd = zeros(n);
        if (ln) {
            ba_layernorm_fwd(x, n, d, gamma, beta, eps, y, mean, rstd);
            ba_layernorm_backward(dy, x, mean, rstd, gamma, n, d, dx, dg, db);
            out_f32("dgamma", dg, d), out_f32("dbeta", db, d);
        } else {
            ba_rmsnorm_fwd(x, n, d, gamma, eps, y, rstd);
            ba_rmsnorm_backward(dy, x, rstd, gamma, n, d, dx, dg);
            out_f32("dw", dg, d);
        }
        out_f32("y", y, n * d), out_f32("dx", dx, n * d);
    } else if (!strcmp(op, "linear")) {
        NEED(4);
        size_t n = arg(argv, 3), in = arg(argv, 4), out = arg(argv, 5);
        ba_weight_layout layout = arg(argv, 6) ? BA_WEIGHT_OUT_IN : BA_WEIGHT_IN_OUT;
        float *x = in_f32("x", n * in), *w = in_f32("w", in * out), *b = in_f32("b", out);
        float *dy = in_f32("dy", n * out);
        float *y = zeros(n * out), *dx = zeros(n * in), *dw = zeros(in * out), *db = zeros(out);
        ba_linear(x, n, in, w, layout, out, b, y);
        ba_linear_backward(dy, x, n, in, w, layout, out, dx, dw, db);
        out_f32("y", y, n * out), out_f32("dx", dx, n * in), out_f32("dw", dw, in * out),
            out_f32("db", db, out);
    } else if (!strcmp(op, "linear_half")) {
        NEED(5);
        size_t n = arg(argv, 3), in = arg(argv, 4), out = arg(argv, 5);
        ba_weight_layout layout = arg(argv, 6) ? BA_WEIGHT_OUT_IN : BA_WEIGHT_IN_OUT;
        ba_dtype dtype = !strcmp(argv[7], "bf16") ? BA_DTYPE_BF16
                         : !strcmp(argv[7], "f16") ? BA_DTYPE_F16 : BA_DTYPE_F32;
        uint16_t *w = read_raw("w.u16", sizeof(uint16_t), in * out);
        float *dy = in_f32("dy", n * out), *dx = zeros(n * in);
        float *scratch = zeros(ba_linear_backward_half_scratch_floats(in, out));
        check(ba_linear_backward_dx_half(dy, n, in, w, dtype, layout, out, dx, scratch, &err), &err);
        out_f32("dx", dx, n * in);
    } else if (!strcmp(op, "gelu") || !strcmp(op, "silu") || !strcmp(op, "swiglu")) {
        NEED(1);
        size_t n = arg(argv, 3);
        bool glu = !strcmp(op, "swiglu");
        float *x = in_f32(glu ? "gate" : "x", n), *dy = in_f32("dy", n);
        float *up = glu ? in_f32("up", n) : NULL;
        float *y = zeros(n), *dx = zeros(n), *dup = zeros(n);
        memcpy(y, x, n * sizeof *y);
        if (!strcmp(op, "gelu")) {
            ba_gelu_new(y, n);
            ba_gelu_new_backward(x, dy, n, dx);
        } else if (!glu) {
            ba_silu(y, n);
            ba_silu_backward(x, dy, n, dx);
        } else {
            ba_swiglu(y, up, n);
            ba_swiglu_backward(x, up, dy, n, dx, dup);
            out_f32("dup", dup, n);
        }
        out_f32("y", y, n), out_f32(glu ? "dgate" : "dx", dx, n);
    } else if (!strcmp(op, "rope")) {
        NEED(5);
        size_t n = arg(argv, 3), first = arg(argv, 6);
        int heads = (int)arg(argv, 4), dh = (int)arg(argv, 5);
        double theta = strtod(argv[7], NULL);
        size_t ld = (size_t)heads * dh;
        float *x = in_f32("x", n * ld), *dy = in_f32("dy", n * ld);
        float *c = zeros(n * dh / 2), *s = zeros(n * dh / 2);
        ba_rope_tables(first, n, dh, theta, c, s);
        ba_rope(x, n, ld, heads, dh, c, s);
        ba_rope_backward(dy, n, ld, heads, dh, c, s);
        out_f32("y", x, n * ld), out_f32("dx", dy, n * ld);
    } else if (!strcmp(op, "attention")) {
        NEED(4);
        size_t n = arg(argv, 3);
        int nh = (int)arg(argv, 4), nkv = (int)arg(argv, 5), dh = (int)arg(argv, 6);
        size_t ldq = (size_t)nh * dh, ldkv = (size_t)nkv * dh;
        float *q = in_f32("q", n * ldq), *k = in_f32("k", n * ldkv), *v = in_f32("v", n * ldkv);
        float *dout = in_f32("dout", n * ldq);
        float *y = zeros(n * ldq), *lse = zeros((size_t)nh * n);
        float *dq = zeros(n * ldq), *dk = zeros(n * ldkv), *dv = zeros(n * ldkv);
        float *scores = zeros(ba_attention_scratch_floats(n));
        float *scratch = zeros(ba_attention_backward_scratch_floats(n));
        float scale = 1.0f / sqrtf((float)dh);
        ba_attention_causal_fwd(q, ldq, k, v, ldkv, n, nh, nkv, dh, scale, y, ldq, lse, scores);
        ba_attention_causal_backward(dout, ldq, q, ldq, k, v, ldkv, y, lse, n, nh, nkv, dh, scale,
                                     dq, dk, dv, scratch);
        out_f32("y", y, n * ldq), out_f32("lse", lse, (size_t)nh * n), out_f32("dq", dq, n * ldq),
            out_f32("dk", dk, n * ldkv), out_f32("dv", dv, n * ldkv);
    } else if (!strcmp(op, "xent")) {
        NEED(5);
        size_t n = arg(argv, 3), d = arg(argv, 4), vocab = arg(argv, 5), rc = arg(argv, 6),
               vc = arg(argv, 7);
        float *h = in_f32("h", n * d), *w = in_f32("w", vocab * d);
        int32_t *target = read_raw("targets.i32", sizeof(int32_t), n);
        size_t count = 0;
        for (size_t t = 0; t < n; t++) count += target[t] != BA_LABEL_IGNORE;
        float *tile = zeros(rc * vc), *dh = zeros(n * d), *dw = zeros(vocab * d);
        double *stats = own(calloc(rc > 0 ? 3 * rc : 1, sizeof *stats)), loss;
        size_t counted;
        check(ba_cross_entropy_chunked(h, n, d, w, vocab, target, count ? 1.0f / (float)count : 0.0f,
                                       rc, vc, tile, stats, &loss, &counted, dh, dw, &err), &err);
        if (counted != count) die("cross-entropy counted a different number of unmasked rows");
        float lc[2] = {(float)loss, (float)counted};
        out_f32("loss", lc, 2), out_f32("dh", dh, n * d), out_f32("dw", dw, vocab * d);
    } else {
        fprintf(stderr, "ops_grad_dump: unknown op '%s'\n", op);
        return 2;
    }
    while (n_owned) free(owned[--n_owned]);
    return 0;
}
