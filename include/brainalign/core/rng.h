/* rng.h — a small, seeded, reproducible random number generator
 * (xoshiro256** seeded through splitmix64). Same seed, same numbers, on
 * every machine and rank count. */
#ifndef BRAINALIGN_RNG_H
#define BRAINALIGN_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} ba_rng;

/* Seed from a 64-bit seed and a stream number (independent streams for
 * e.g. subjects or stories). */
void ba_rng_seed(ba_rng *rng, uint64_t seed, uint64_t stream);
uint64_t ba_rng_next(ba_rng *rng);
double ba_rng_uniform(ba_rng *rng);           /* [0, 1) */
double ba_rng_normal(ba_rng *rng);            /* N(0, 1) */
double ba_rng_student_t(ba_rng *rng, double dof); /* heavy tails */
double ba_rng_gamma(ba_rng *rng, double shape);   /* scale 1 */

#endif
