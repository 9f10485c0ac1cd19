/* rng.c — xoshiro256** with splitmix64 seeding (see rng.h). */
#include "brainalign/core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ba_rng_seed(ba_rng *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL);
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ba_rng_next(ba_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ba_rng_uniform(ba_rng *rng) { return (ba_rng_next(rng) >> 11) * 0x1.0p-53; }

double ba_rng_normal(ba_rng *rng)
{
    /* Box-Muller; one draw per call keeps the stream simple to reason about. */
    double u1 = ba_rng_uniform(rng), u2 = ba_rng_uniform(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double ba_rng_gamma(ba_rng *rng, double shape)
{
    /* Marsaglia-Tsang; shape < 1 by the boost u^(1/shape). */
    if (shape < 1) return ba_rng_gamma(rng, shape + 1) * pow(ba_rng_uniform(rng) + 1e-300, 1 / shape);
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9 * d);
    for (;;) {
        double x = ba_rng_normal(rng), v = 1 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = ba_rng_uniform(rng);
        if (log(u + 1e-300) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

double ba_rng_student_t(ba_rng *rng, double dof)
{
    double z = ba_rng_normal(rng), g = ba_rng_gamma(rng, dof / 2) * 2;
    return z / sqrt(g / dof);
}
