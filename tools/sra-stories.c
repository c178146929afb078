/*
 * sra-stories - simple English stories from a probabilistic grammar of our
 * own: self-contained training text for `make demo` (issue 9).
 *
 *   sra-stories --n N [--seed S] [--jsonl] [--min-sentences A] [--max-sentences B]
 *
 * Story i is generated from seed S+i alone (so any story can be regenerated
 * by itself, and train/held-out splits come from disjoint seed ranges).
 * Text output: one story per line, stories separated by a blank line;
 * --jsonl: one {"text": ..., "seed": k} object per line.
 *
 * The text has structure at several ranges, so that a bigger model can beat
 * a smaller one on it: a cast (1-3 characters with he/she/they pronouns used
 * consistently), a place, weather and time of day chosen at the start and
 * referred back to at the end, a problem (a lost object that is found again,
 * a broken one that is mended, an animal to rescue, a fear to overcome, a
 * toy to share, a way home to find) whose details come back in the
 * resolution and the moral, and dialogue in quotes.
 *
 * How it works: a template language, expanded with the story's own
 * splitmix64 stream:
 *   [a|b|c]   one alternative, uniformly (nestable; [x|] = optional x)
 *   {key}     a slot of the story (character, object, place ...), itself a
 *             template; "A.he" is character A's subject pronoun
 *   ^         capitalize the next letter
 * Each "beat" (one or a few sentences) is expanded, then fixed up: a -> an
 * before a vowel sound, capitals at sentence starts and after an opening
 * quote. Beats are core (the plot: always kept) or optional (detail); the
 * story keeps the optional beats that bring its sentence count to a target
 * drawn from [A, B].
 *
 * Sentences are counted as: . ! ? outside quotes followed by a space or the
 * end, plus a closing quote after . ! ? that ends the text or is followed by
 * a capitalized word (so `"Help!" cried Tom.` is one sentence).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The plot of a story never needs more than CORE_MAX_SENTENCES sentences
 * (the longest path, sharing with a friend and a grown-up, has exactly 17),
 * and with every optional beat kept a story always reaches STORY_MIN_REACH
 * (measured over 200k seeds; tests/cli_stories.sh checks both ends). The
 * flags are held to these bounds so that the count always lands in range. */
#ifndef CORE_MAX_SENTENCES
#define CORE_MAX_SENTENCES 17
#endif
#ifndef STORY_MIN_REACH
#define STORY_MIN_REACH 28
#endif

/* =============================================================== words */

typedef struct { const char *name; int pron; } named; /* pron: 0 he, 1 she, 2 they */

static const named HUMAN_NAMES[] = {
    {"Lily", 1}, {"Mia", 1}, {"Emma", 1}, {"Sara", 1}, {"Lucy", 1}, {"Anna", 1}, {"Ella", 1},
    {"Zoe", 1}, {"Ruby", 1}, {"Rosa", 1}, {"Nora", 1}, {"Maya", 1}, {"Amy", 1}, {"Kate", 1},
    {"Ivy", 1}, {"Hannah", 1}, {"Grace", 1}, {"Molly", 1}, {"Daisy", 1}, {"Clara", 1},
    {"Tom", 0}, {"Ben", 0}, {"Max", 0}, {"Leo", 0}, {"Jack", 0}, {"Tim", 0}, {"Finn", 0},
    {"Noah", 0}, {"Oscar", 0}, {"Hugo", 0}, {"Eli", 0}, {"Luke", 0}, {"Owen", 0}, {"Jake", 0},
    {"Theo", 0}, {"Omar", 0}, {"Ravi", 0}, {"Pablo", 0}, {"Kai", 0}, {"Sam", 0},
    {"Alex", 2}, {"Robin", 2}, {"Jamie", 2}, {"Riley", 2}, {"Charlie", 2}, {"Quinn", 2},
    {"Jordan", 2}, {"Rowan", 2},
};
static const char *const ANIMAL_NAMES[] = {
    "Pip", "Fluffy", "Spot", "Coco", "Biscuit", "Bubbles", "Pepper", "Sunny", "Ziggy",
    "Muffin", "Patch", "Whiskers", "Button", "Hazel", "Oreo", "Toffee", "Nibbles", "Dot",
    "Peanut", "Bean", "Maple", "Clover", "Pebbles", "Ginger",
};
typedef struct { const char *kind, *Kind, *home; } animal_t;
static const animal_t ANIMALS[] = {
    {"cat", "Cat", "a cozy basket by the window"},
    {"dog", "Dog", "a little red doghouse"},
    {"bunny", "Bunny", "a warm burrow under a hill"},
    {"bear", "Bear", "a big cave in the woods"},
    {"fox", "Fox", "a snug den under a tree"},
    {"mouse", "Mouse", "a tiny hole in the wall"},
    {"duck", "Duck", "a nest by the water"},
    {"owl", "Owl", "a hole in an old oak tree"},
    {"frog", "Frog", "a lily pad on a quiet pond"},
    {"squirrel", "Squirrel", "a nest high in a tree"},
    {"pig", "Pig", "a muddy pen on a farm"},
    {"lamb", "Lamb", "a green field on a farm"},
    {"turtle", "Turtle", "a shady spot by a stream"},
    {"elephant", "Elephant", "a wide valley full of trees"},
    {"otter", "Otter", "a lodge by the river"},
    {"hedgehog", "Hedgehog", "a pile of dry leaves"},
};
static const named HUMAN_HELPERS[] = {
    {"Mom", 1}, {"Dad", 0}, {"Grandma", 1}, {"Grandpa", 0}, {"Aunt Jo", 1}, {"Uncle Fred", 0},
    {"Miss Hill", 1},
};
static const char *const PRONOUNS[3][5] = {
    {"he", "him", "his", "was", "himself"},
    {"she", "her", "her", "was", "herself"},
    {"they", "them", "their", "were", "themselves"},
};
static const char *const HUMAN_KIND[3] = {"boy", "girl", "kid"};

typedef struct {
    const char *noun;
    int plural;
    const char *adjs;   /* a template: [red|blue] */
    const char *ubase, *upast; /* what one does with it: "throw", "threw" */
    const char *dmg;    /* how it breaks (past), NULL: it cannot */
    const char *tool;   /* what mends it */
} object_t;
static const object_t OBJECTS[] = {
    {"ball", 0, "[red|blue|bouncy|striped|yellow|orange|green]", "throw", "threw", "got a hole in it", "a patch and some glue"},
    {"kite", 0, "[red|green|rainbow|purple|big|orange]", "fly", "flew", "tore", "some tape"},
    {"teddy bear", 0, "[brown|soft|fluffy|old|little]", "hug", "hugged", "ripped", "a needle and thread"},
    {"doll", 0, "[pretty|little|old|rag]", "play with", "played with", "lost an arm", "some glue"},
    {"toy car", 0, "[red|blue|shiny|fast|little]", "race", "raced", "lost a wheel", "some glue"},
    {"toy boat", 0, "[blue|wooden|little|white]", "sail", "sailed", "cracked", "some glue"},
    {"hat", 0, "[green|yellow|big|straw|warm|orange]", "wear", "wore", "ripped", "a needle and thread"},
    {"scarf", 0, "[striped|warm|red|woolly|long]", "wear", "wore", "ripped", "a needle and thread"},
    {"mittens", 1, "[warm|red|fuzzy|blue]", "wear", "wore", "got holes in them", "a needle and thread"},
    {"book", 0, "[old|picture|blue|big|funny]", "read", "read", "tore", "some tape"},
    {"crayons", 1, "[new|bright|colorful]", "draw with", "drew with", "broke", "some tape"},
    {"marbles", 1, "[shiny|glass|colorful|blue]", "roll", "rolled", NULL, NULL},
    {"umbrella", 0, "[yellow|red|spotted|little|orange]", "open", "opened", "broke", "some tape"},
    {"toy robot", 0, "[silver|shiny|little|red]", "play with", "played with", "lost an arm", "some glue"},
    {"necklace", 0, "[shiny|blue|pretty|bead|little]", "wear", "wore", "broke", "a new string"},
    {"yo-yo", 0, "[red|green|shiny|blue]", "spin", "spun", "lost its string", "a new string"},
    {"whistle", 0, "[silver|shiny|little]", "blow", "blew", NULL, NULL},
    {"toy train", 0, "[red|wooden|little|blue]", "push", "pushed", "lost a wheel", "some glue"},
    {"drum", 0, "[little|red|loud]", "play", "played", "got a hole in it", "some tape"},
    {"backpack", 0, "[blue|green|big|purple]", "carry", "carried", "ripped", "a needle and thread"},
    {"puppet", 0, "[sock|funny|little|old]", "play with", "played with", "ripped", "a needle and thread"},
    {"bucket", 0, "[red|yellow|little|orange]", "fill", "filled", "cracked", "some tape"},
    {"shovel", 0, "[little|red|blue]", "dig with", "dug with", "broke", "some tape"},
    {"acorn", 0, "[big|shiny|brown|little]", "hold", "held", NULL, NULL},
    {"carrot", 0, "[big|orange|crunchy]", "carry", "carried", NULL, NULL},
    {"apple", 0, "[red|shiny|juicy|green]", "carry", "carried", NULL, NULL},
    {"feather", 0, "[blue|long|soft|white]", "hold", "held", NULL, NULL},
    {"pebble", 0, "[shiny|smooth|white|round]", "hold", "held", NULL, NULL},
    {"bell", 0, "[little|golden|shiny]", "ring", "rang", "cracked", "some glue"},
    {"basket", 0, "[little|berry|woven|round]", "carry", "carried", "tore", "some string"},
    {"blanket", 0, "[soft|warm|blue|fuzzy|striped]", "carry", "carried", "ripped", "a needle and thread"},
    {"sunglasses", 1, "[cool|pink|round|green]", "wear", "wore", "broke", "some glue"},
    {"flashlight", 0, "[little|yellow|bright]", "shine", "shone", NULL, NULL},
};

typedef struct { const char *prep, *np; } spot_t;
typedef struct { const char *base, *past; } act_t;
typedef struct {
    const char *name;
    const char *at;     /* "in" the forest, "at" the beach */
    int water;          /* no snow there */
    int wide;           /* big enough to get lost in */
    spot_t spots[6];
    act_t acts[4];
    const char *fear;   /* noun phrase */
    act_t fearact;
    const char *landmark;
    const char *sight;  /* a sentence template */
} place_t;
static const place_t PLACES[] = {
    {"park", "in", 0, 1,
     {{"under", "the old wooden bench"}, {"behind", "the big oak tree"}, {"in", "the sandbox"},
      {"under", "the slide"}, {"near", "the duck pond"}, {"behind", "the green bushes"}},
     {{"play on the swings", "played on the swings"}, {"go down the slide", "went down the slide"},
      {"run on the soft grass", "ran on the soft grass"}, {"feed the ducks", "fed the ducks"}},
     "the tall slide", {"go down the tall slide", "went down the tall slide"}, "the tall clock tower",
     "[There were tall trees and a pond full of ducks.|Children were laughing and birds were singing.]"},
    {"beach", "at", 1, 1,
     {{"under", "a pile of seaweed"}, {"behind", "the big rock"}, {"in", "a little tide pool"},
      {"next to", "the lifeguard tower"}, {"under", "the beach towel"}, {"inside", "an old sand bucket"}},
     {{"build a sandcastle", "built a sandcastle"}, {"swim in the waves", "swam in the waves"},
      {"look for shells", "looked for shells"}, {"dig a big hole", "dug a big hole"}},
     "the big waves", {"jump over the waves", "jumped over the waves"}, "the red and white lighthouse",
     "[The waves rolled onto the sand, and seagulls flew over the water.|The sand was soft and the sea was blue.]"},
    {"forest", "in", 0, 1,
     {{"under", "a pile of leaves"}, {"inside", "a hollow log"}, {"behind", "a mossy rock"},
      {"under", "a tall pine tree"}, {"next to", "a little stream"}, {"in", "a thick bush"}},
     {{"climb over logs", "climbed over logs"}, {"pick berries", "picked berries"},
      {"listen to the birds", "listened to the birds"}, {"look for mushrooms", "looked for mushrooms"}},
     "the old wooden bridge", {"walk across the old bridge", "walked across the old bridge"},
     "the giant tree with the twisty roots",
     "[The trees were tall and green, and the air smelled fresh.|Birds sang in the branches high above.]"},
    {"garden", "in", 0, 0,
     {{"behind", "the flower pots"}, {"in", "the vegetable patch"}, {"under", "the garden bench"},
      {"next to", "the watering can"}, {"inside", "the old shed"}, {"under", "the big sunflower"}},
     {{"water the flowers", "watered the flowers"}, {"dig in the dirt", "dug in the dirt"},
      {"chase butterflies", "chased butterflies"}, {"pick strawberries", "picked strawberries"}},
     "the buzzing bees", {"walk past the bees", "walked past the bees"}, NULL,
     "[Red and yellow flowers grew everywhere.|Bees buzzed from flower to flower.]"},
    {"farm", "on", 0, 1,
     {{"in", "the tall hay"}, {"behind", "the red barn"}, {"next to", "the chicken coop"},
      {"under", "the old tractor"}, {"inside", "an empty feed bucket"}, {"by", "the wooden fence"}},
     {{"feed the chickens", "fed the chickens"}, {"ride in the wagon", "rode in the wagon"},
      {"pet the lambs", "petted the lambs"}, {"collect eggs", "collected eggs"}},
     "the big horse", {"pet the big horse", "petted the big horse"}, "the tall windmill",
     "[Cows mooed and hens clucked in the yard.|The barn was red and the fields were gold.]"},
    {"lake", "at", 1, 0,
     {{"under", "the wooden dock"}, {"in", "the tall reeds"}, {"next to", "the little boat"},
      {"under", "a flat rock"}, {"by", "the picnic table"}, {"behind", "an old tree stump"}},
     {{"throw stones into the water", "threw stones into the water"}, {"catch little fish", "caught little fish"},
      {"sit on the dock", "sat on the dock"}, {"watch the ducks", "watched the ducks"}},
     "the deep water", {"swim to the dock", "swam to the dock"}, NULL,
     "[The water was calm and clear.|Ducks swam slowly across the water.]"},
    {"meadow", "in", 0, 1,
     {{"in", "the tall grass"}, {"behind", "a big round rock"}, {"next to", "an old apple tree"},
      {"under", "a pile of hay"}, {"near", "the little bridge"}, {"among", "the wild flowers"}},
     {{"pick flowers", "picked flowers"}, {"chase butterflies", "chased butterflies"},
      {"roll in the grass", "rolled in the grass"}, {"look at the clouds", "looked at the clouds"}},
     "the steep hill", {"roll down the steep hill", "rolled down the steep hill"}, "the old stone wall",
     "[Wild flowers grew all over the meadow.|The grass was tall and soft.]"},
    {"playground", "at", 0, 0,
     {{"under", "the seesaw"}, {"in", "the sandbox"}, {"behind", "the swings"},
      {"under", "the slide"}, {"inside", "the little play house"}, {"near", "the water fountain"}},
     {{"swing on the swings", "swung on the swings"}, {"go down the slide", "went down the slide"},
      {"play on the seesaw", "played on the seesaw"}, {"climb the jungle gym", "climbed the jungle gym"}},
     "the high monkey bars", {"climb across the monkey bars", "climbed across the monkey bars"}, NULL,
     "[Kids were running and laughing everywhere.|The swings went up and down.]"},
    {"pond", "at", 1, 0,
     {{"under", "a big lily pad"}, {"in", "the tall reeds"}, {"under", "the willow tree"},
      {"behind", "a mossy log"}, {"near", "the muddy bank"}, {"between", "two flat stones"}},
     {{"splash in the water", "splashed in the water"}, {"watch the frogs", "watched the frogs"},
      {"float leaves on the water", "floated leaves on the water"}, {"look for tadpoles", "looked for tadpoles"}},
     "the slippery stones", {"hop across the stones", "hopped across the stones"}, NULL,
     "[Frogs sat on the lily pads.|Dragonflies flew over the water.]"},
};

enum { SUNNY, CLOUDY, WINDY, RAINY, SNOWY, NWEATHER };
static const char *const WEATHER[NWEATHER] = {"sunny", "cloudy", "windy", "rainy", "snowy"};
static const char *const WEATHER_SKY[NWEATHER] = {
    "The sun was shining [brightly |]in the blue sky.",
    "Big gray clouds [covered|filled] the sky.",
    "The wind [was blowing the leaves around|whistled through the trees].",
    "Little drops of rain were falling [everywhere|on the ground].",
    "Soft white snow [covered the ground|was falling from the sky].",
};
static const char *const WEATHER_WEAR[NWEATHER] = {
    "{A} put on {A.his} [sun hat|favorite cap] before going out.",
    "{A} took a jacket, just in case.",
    "The wind [pulled at|played with] {A.his} hair.",
    "{A} put on {A.his} [rain boots|yellow raincoat] and [splashed|jumped] in a puddle.",
    "{A} put on {A.his} warm coat and [a woolly hat|thick boots].",
};
static const act_t RAIN_ACTS[4] = {
    {"jump in puddles", "jumped in puddles"}, {"splash in the puddles", "splashed in the puddles"},
    {"look for worms", "looked for worms"}, {"catch raindrops", "caught raindrops"}};
static const act_t SNOW_ACTS[4] = {
    {"build a snowman", "built a snowman"}, {"throw snowballs", "threw snowballs"},
    {"make snow angels", "made snow angels"}, {"ride a sled", "rode a sled"}};

enum { MORNING, AFTERNOON, EVENING, NTIME };
static const char *const TIMES[NTIME] = {"morning", "afternoon", "evening"};

typedef struct { const char *noun, *sound; int climbs; } pet_t;
static const pet_t PETS[] = {
    {"kitten", "Meow", 1}, {"puppy", "Woof", 0}, {"baby bird", "Tweet", 1}, {"duckling", "Quack", 0},
    {"baby squirrel", "Squeak", 1}, {"lamb", "Baa", 0}, {"baby goat", "Maa", 0},
};
typedef struct { const char *where, *tool, *action; int high; } stuck_t;
static const stuck_t STUCK[] = {
    {"up in a tall tree", "a ladder", "climbed up the ladder and gently carried the {pet} down", 1},
    {"on the roof of an old shed", "a ladder", "climbed up the ladder and lifted the {pet} down", 1},
    {"at the bottom of a deep hole", "a basket on a rope",
     "lowered the basket, and the {pet} climbed inside. ^Then {R.he} pulled it up slowly", 0},
    {"in a thorny bush", "thick gloves", "put on the gloves and pushed the thorny branches away", 0},
    {"under a heavy log", "a long stick", "pushed the stick under the log and lifted it up", 0},
};

enum { P_LOST, P_BROKEN, P_RESCUE, P_AFRAID, P_SHARE, P_LOSTWAY, NPROBLEM };

/* ================================================================ story */

#define MAX_SLOTS 128
#define ARENA_BYTES 4096
#define RAW_BYTES 32768
#define TMP_BYTES 4096
#define MAX_BEATS 96

typedef struct { char key[14]; unsigned char klen; const char *val; } slot_t;
typedef struct { int off, len, nsent, core; } beat_t;

typedef struct {
    uint64_t rng;
    slot_t slot[MAX_SLOTS];
    int nslot;
    char arena[ARENA_BYTES];
    int aused;
    char tmp[TMP_BYTES];
    int tmplen, cap;
    char raw[RAW_BYTES];
    int rawlen;
    beat_t beat[MAX_BEATS];
    int nbeat;
    int bad; /* a template named an unknown slot, or a buffer overflowed */
} story;

static uint32_t rnd(story *st, uint32_t n) { return (uint32_t)(sra_splitmix64(&st->rng) % n); }
static int chance(story *st, int percent) { return (int)rnd(st, 100) < percent; }
#define PICK(st, arr) (&(arr)[rnd(st, (uint32_t)(sizeof(arr) / sizeof((arr)[0])))])

static const char *keep(story *st, const char *fmt1, const char *a, const char *b) {
    /* fmt1 with %s for a and b: a small formatted string in the arena */
    int room = ARENA_BYTES - st->aused;
    int n = snprintf(st->arena + st->aused, (size_t)room, fmt1, a, b ? b : "");
    if (n < 0 || n >= room) { st->bad = 1; return ""; }
    const char *s = st->arena + st->aused;
    st->aused += n + 1;
    return s;
}

static void set(story *st, const char *key, const char *val) {
    size_t kl = strlen(key);
    for (int i = 0; i < st->nslot; i++)
        if (st->slot[i].klen == kl && !memcmp(st->slot[i].key, key, kl)) { st->slot[i].val = val; return; }
    if (st->nslot == MAX_SLOTS || kl >= sizeof st->slot[0].key) { st->bad = 1; return; }
    slot_t *s = &st->slot[st->nslot++];
    memcpy(s->key, key, kl + 1);
    s->klen = (unsigned char)kl;
    s->val = val;
}

static const char *lookup(story *st, const char *k, size_t n) {
    for (int i = 0; i < st->nslot; i++)
        if (st->slot[i].klen == n && !memcmp(st->slot[i].key, k, n)) return st->slot[i].val;
    return NULL;
}

/* A character under role letter r: r, r.he, r.him, r.his, r.was, r.self, r.kind. */
static void set_char(story *st, char r, const char *name, int pron, const char *kind) {
    static const char *const F[] = {".he", ".him", ".his", ".was", ".self"};
    char key[24] = {r, 0};
    set(st, key, name);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "%c%s", r, F[i]);
        set(st, key, PRONOUNS[pron][i]);
    }
    snprintf(key, sizeof key, "%c.kind", r);
    set(st, key, kind);
}

/* Copies the slots of role `from` to role `to` (an alias: H = the helper). */
static void alias(story *st, char to, char from) {
    static const char *const F[] = {"", ".he", ".him", ".his", ".was", ".self", ".kind"};
    for (int i = 0; i < 7; i++) {
        char k1[24], k2[24];
        snprintf(k1, sizeof k1, "%c%s", to, F[i]);
        snprintf(k2, sizeof k2, "%c%s", from, F[i]);
        const char *v = lookup(st, k2, strlen(k2));
        if (v) set(st, k1, v);
    }
}

static void expand(story *st, const char *t, size_t n, int depth);

/* Expands template t once, now, into the arena: a choice that must stay
 * the same every time the slot is used (the object's colour). */
static const char *fix(story *st, const char *t) {
    st->tmplen = 0;
    st->cap = 0;
    expand(st, t, strlen(t), 0);
    int room = ARENA_BYTES - st->aused;
    if (st->tmplen >= room) { st->bad = 1; return ""; }
    char *s = st->arena + st->aused;
    memcpy(s, st->tmp, (size_t)st->tmplen);
    s[st->tmplen] = 0;
    st->aused += st->tmplen + 1;
    return s;
}

static void put(story *st, char c) {
    if (st->tmplen >= TMP_BYTES - 1) { st->bad = 1; return; }
    if (st->cap && c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) st->cap = 0;
    st->tmp[st->tmplen++] = c;
}

static void expand(story *st, const char *t, size_t n, int depth) {
    if (depth > 8) { st->bad = 1; return; }
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '[') {
            size_t start[24], end[24], j;
            int nalt = 0, d = 0;
            start[nalt++] = i + 1;
            for (j = i + 1; j < n; j++) {
                if (t[j] == '[') d++;
                else if (t[j] == ']') { if (!d) break; d--; }
                else if (t[j] == '|' && !d) {
                    if (nalt == 24) { st->bad = 1; return; }
                    end[nalt - 1] = j;
                    start[nalt++] = j + 1;
                }
            }
            if (j == n) { st->bad = 1; return; }
            end[nalt - 1] = j;
            uint32_t k = rnd(st, (uint32_t)nalt);
            expand(st, t + start[k], end[k] - start[k], depth + 1);
            i = j;
        } else if (c == '{') {
            size_t j = i + 1;
            while (j < n && t[j] != '}') j++;
            const char *v = j < n ? lookup(st, t + i + 1, j - i - 1) : NULL;
            if (!v) {
                fprintf(stderr, "sra-stories: internal error: unknown slot {%.*s}\n", (int)(j - i - 1), t + i + 1);
                st->bad = 1;
                return;
            }
            expand(st, v, strlen(v), depth + 1);
            i = j;
        } else if (c == '^') {
            st->cap = 1;
        } else {
            put(st, c);
        }
    }
}

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Does the word at s start with a vowel sound ("an apple", "an hour", but
 * "a unicorn", "a useful")? */
static int vowel_sound(const char *s, size_t n) {
    if (!n) return 0;
    char c = s[0];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c == 'a' || c == 'e' || c == 'i' || c == 'o') return !(n >= 3 && !strncmp(s, "one", 3));
    if (c == 'u') return !(n >= 3 && (!strncmp(s, "uni", 3) || !strncmp(s, "use", 3) || !strncmp(s, "usu", 3)));
    if (c == 'h') return (n >= 4 && !strncmp(s, "hour", 4)) || (n >= 6 && !strncmp(s, "honest", 6));
    return 0;
}

static int is_end(char c) { return c == '.' || c == '!' || c == '?'; }

static int count_sentences(const char *s, int n) {
    int q = 0, k = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] == '"') {
            q = !q;
            if (!q && i > 0 && is_end(s[i - 1]) &&
                (i + 1 == n || (s[i + 1] == ' ' && i + 2 < n && s[i + 2] >= 'A' && s[i + 2] <= 'Z')))
                k++;
        } else if (!q && is_end(s[i]) && (i + 1 == n || s[i + 1] == ' ')) {
            k++;
        }
    }
    return k;
}

/* Expands template t as one beat: a/an, capitals, then into raw. */
static void beat(story *st, int core, const char *t) {
    if (st->nbeat == MAX_BEATS) { st->bad = 1; return; }
    st->tmplen = 0;
    st->cap = 1;
    expand(st, t, strlen(t), 0);
    const char *s = st->tmp;
    int n = st->tmplen, off = st->rawlen, q = 0, capnext = 1;
    if (off + 2 * n + 2 >= RAW_BYTES) { st->bad = 1; return; }
    char *o = st->raw + off;
    int m = 0;
    for (int i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            q = !q;
            if (q) capnext = 1;
            o[m++] = c;
            continue;
        }
        if (is_alpha(c) && capnext) {
            if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
            capnext = 0;
        }
        o[m++] = c;
        if ((c == 'a' || c == 'A') && (i == 0 || !is_alpha(s[i - 1])) && i + 2 < n && s[i + 1] == ' ' &&
            vowel_sound(s + i + 2, (size_t)(n - i - 2)))
            o[m++] = 'n';
        if (is_end(c) && i + 1 < n && s[i + 1] == ' ') capnext = 1;
    }
    if (q) st->bad = 1; /* unbalanced quotes in a template */
    beat_t *b = &st->beat[st->nbeat++];
    b->off = off;
    b->len = m;
    b->core = core;
    b->nsent = count_sentences(o, m);
    st->rawlen = off + m;
}
#define CORE(t) beat(st, 1, t)
#define OPT(t) beat(st, 0, t)

/* ------------------------------------------------------------- the plot */

static void tell(story *st) {
    /* --- the cast */
    int animal = chance(st, 35), hasB = chance(st, 55), hasC = chance(st, 50);
    int ia = 0, ib = 0;
    if (!animal) {
        ia = (int)rnd(st, sizeof HUMAN_NAMES / sizeof HUMAN_NAMES[0]);
        const named *a = &HUMAN_NAMES[ia];
        set_char(st, 'A', a->name, a->pron, HUMAN_KIND[a->pron]);
        do ib = (int)rnd(st, sizeof HUMAN_NAMES / sizeof HUMAN_NAMES[0]); while (ib == ia);
        const named *b = &HUMAN_NAMES[ib];
        set_char(st, 'B', b->name, b->pron, HUMAN_KIND[b->pron]);
        const named *c = PICK(st, HUMAN_HELPERS);
        set_char(st, 'C', c->name, c->pron, "grown-up");
        set(st, "home", "[a small house|a little yellow house|a house with a red door|a busy town]");
        set(st, "adj", "[little|kind|curious|cheerful|playful|happy|clever]");
    } else {
        const animal_t *ka = PICK(st, ANIMALS), *kb = PICK(st, ANIMALS);
        ia = (int)rnd(st, sizeof ANIMAL_NAMES / sizeof ANIMAL_NAMES[0]);
        do ib = (int)rnd(st, sizeof ANIMAL_NAMES / sizeof ANIMAL_NAMES[0]); while (ib == ia);
        int pa = chance(st, 10) ? 2 : (int)rnd(st, 2), pb = chance(st, 10) ? 2 : (int)rnd(st, 2);
        set_char(st, 'A', ANIMAL_NAMES[ia], pa, ka->kind);
        set_char(st, 'B', ANIMAL_NAMES[ib], pb, kb->kind);
        int which = (int)rnd(st, 4);
        if (which == 0) set_char(st, 'C', keep(st, "Mama %s", ka->Kind, NULL), 1, "grown-up");
        else if (which == 1) set_char(st, 'C', keep(st, "Papa %s", ka->Kind, NULL), 0, "grown-up");
        else if (which == 2) set_char(st, 'C', "Old Owl", 0, "owl");
        else set_char(st, 'C', "Granny Turtle", 1, "turtle");
        set(st, "home", ka->home);
        set(st, "adj", "[little|fluffy|small|young|friendly|curious]");
    }
    /* G: the hero's group (A, or A and B), H: the helper (C, else B) */
    if (hasB) {
        set(st, "G", "{A} and {B}");
        set(st, "G.he", "they");
        set(st, "G.him", "them");
        set(st, "G.his", "their");
        set(st, "G.was", "were");
        set(st, "G.self", "themselves");
    } else {
        alias(st, 'G', 'A');
    }
    int hasH = hasB || hasC;
    if (hasC) alias(st, 'H', 'C');
    else if (hasB) alias(st, 'H', 'B');
    set(st, "with", hasC ? " with {C}" : "");
    set(st, "we", hasB ? "we" : "I");
    set(st, "are", hasB ? "are" : "am");

    /* --- the setting */
    const place_t *pl = PICK(st, PLACES);
    int w, tm = (int)rnd(st, NTIME);
    do w = (int)rnd(st, NWEATHER); while (pl->water && w == SNOWY);
    set(st, "place", pl->name);
    set(st, "Atplace", keep(st, "^%s the {place}", pl->at, NULL));
    set(st, "lm", pl->landmark ? pl->landmark : "the path");
    size_t fl = strlen(pl->fear);
    set(st, "fear", pl->fear);
    set(st, "fearwas", pl->fear[fl - 1] == 's' ? "were" : "was");
    set(st, "weather", WEATHER[w]);
    set(st, "time", TIMES[tm]);
    const act_t *acts = w == RAINY ? RAIN_ACTS : w == SNOWY ? SNOW_ACTS : pl->acts;
    int a1 = (int)rnd(st, 4), a2 = (a1 + 1 + (int)rnd(st, 3)) % 4;
    set(st, "act", acts[a1].base);
    set(st, "acted", acts[a1].past);
    set(st, "act2", acts[a2].base);
    set(st, "acted2", acts[a2].past);
    int sp[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 5; i > 0; i--) { int j = (int)rnd(st, (uint32_t)i + 1), x = sp[i]; sp[i] = sp[j]; sp[j] = x; }
    for (int i = 0; i < 3; i++) {
        char k[24];
        snprintf(k, sizeof k, "loc%d", i + 1);
        set(st, k, keep(st, "%s %s", pl->spots[sp[i]].prep, pl->spots[sp[i]].np));
        snprintf(k, sizeof k, "spot%d", i + 1);
        set(st, k, pl->spots[sp[i]].np);
    }

    /* --- the problem */
    int problem;
    for (;;) {
        problem = (int)rnd(st, NPROBLEM);
        if (problem == P_SHARE && !hasB) continue;
        if (problem == P_LOSTWAY && !pl->wide) continue;
        break;
    }
    const object_t *ob;
    do ob = PICK(st, OBJECTS); while (problem == P_BROKEN && !ob->dmg);
    set(st, "o", ob->noun);
    set(st, "O", chance(st, 80) ? fix(st, keep(st, "%s %s", ob->adjs, ob->noun)) : ob->noun);
    set(st, "aO", ob->plural ? "some {O}" : "a {O}");
    set(st, "it", ob->plural ? "them" : "it");
    set(st, "itS", ob->plural ? "they" : "it");
    set(st, "owas", ob->plural ? "were" : "was");
    set(st, "ois", ob->plural ? "are" : "is");
    set(st, "ouse", ob->ubase);
    set(st, "oused", ob->upast);
    if (ob->dmg) { set(st, "dmg", ob->dmg); set(st, "tool", ob->tool); }

    /* ======================= beginning: who, where, when */
    if (animal)
        CORE("[Once upon a time, there was a {adj} {A.kind} named {A}.|There once was a {adj} {A.kind} called {A}.|"
             "In a quiet corner of the world lived a {adj} {A.kind} named {A}.]");
    else
        CORE("[Once upon a time, there was a {adj} {A.kind} named {A}.|There once was a {adj} {A.kind} called {A}.|"
             "{A} was a {adj} {A.kind} who lived in {home}.]");
    if (animal) OPT("{A} lived in {home}.");
    OPT("{A} loved to {act} [more than anything|every day|whenever {A.he} could].");
    if (hasB)
        OPT("[{A} had a best friend named {B}.|{A.his} best friend was a {B.kind} named {B}.|"
            "{A} and {B} were best friends.]");
    if (hasB) OPT("[{B} always made {A} laugh.|{A} and {B} did everything together.|{B} lived [next door|close by].]");
    if (hasC) OPT("{A} [loved|liked] spending time with {C}.");
    if (problem == P_LOST || problem == P_BROKEN || problem == P_SHARE) {
        CORE("{A} had {aO} that {A.he} loved [very much|more than anything|so much].");
        OPT("[{A} took {A.his} {o} everywhere.|Every day, {A} {oused} {A.his} {o}.]");
    }
    CORE(hasB ? "One {weather} {time}, {A} and {B} went to the {place}{with}."
              : "One {weather} {time}, {A} went to the {place}{with}.");
    OPT(WEATHER_SKY[w]);
    OPT(WEATHER_WEAR[w]);
    OPT(pl->sight);
    OPT("The {place} was [quiet|busy|peaceful|lovely] that {time}.");
    OPT("{A} [hummed a happy song|skipped along the path|smiled at everything {A.he} saw].");
    OPT(animal ? "{A} said hello to [a friendly frog|a busy ant|a little bird|an old snail]."
               : "{A} waved to [a friendly dog|an old man walking by|a little bird|a lady with a big hat].");
    if (problem == P_LOSTWAY)
        CORE("[On the way in, {G} walked past {lm}.|At the edge of the {place}, {A} saw {lm}.]");
    if (problem != P_LOSTWAY) CORE("{G} {acted} [for a long time|all {time}|happily|and laughed].");
    OPT(hasB ? "They were having so much fun." : "{A.he} {A.was} having so much fun.");

    /* ======================= the problem and its resolution */
    switch (problem) {
    case P_LOST:
        CORE("[Then|After a while,] {A} put {A.his} {o} down to {act2}, and when {A.he} came back, {itS} {owas} gone!");
        CORE("\"Oh no! Where {ois} my {o}?\" cried {A}.");
        OPT("{A} felt [sad|worried|upset]. ^{A.his} eyes filled with tears.");
        if (hasB) OPT("\"Don't worry, {A},\" said {B}. \"I will help you [look|find {it}].\"");
        OPT("{G} looked {loc1}, but {itS} {owas} not there.");
        OPT("Then {A} looked {loc2}, but {A.he} only found [a snail|an old leaf|a pinecone|a lost sock|a sleepy bug|"
            "an empty box|a ladybug|a round stone].");
        if (hasC) {
            CORE("{A} [ran|went] to {C}. \"Have you seen my {O}?\" {A.he} asked.");
            OPT("{C} thought for a moment. \"Where did you [last have|put] {it}?\" {C.he} asked. "
                "\"I put {it} down when I wanted to {act2},\" said {A}.");
            OPT("\"Let's look again, [carefully|slowly] this time,\" said {C}.");
        }
        CORE("At last, {A} [looked|peeked] {loc3}, and there {owas} {A.his} {O}!");
        CORE("\"I found {it}!\" shouted {A}, and {A.he} hugged {A.his} {o} [tight|close].");
        if (hasH) OPT("\"Thank you for helping me, {H},\" said {A}.");
        OPT("{A} [smiled|laughed] and {oused} {A.his} {o} again.");
        CORE("From that day on, {A} always kept {A.his} {O} [close|in a safe place|where {A.he} could see {it}].");
        break;
    case P_BROKEN:
        OPT("{A} [happily |]{oused} {A.his} {o} [for a while|again and again].");
        CORE("[Suddenly|All at once|Then], {A.his} {o} {dmg}!");
        CORE("\"My {o}! ^{itS} {ois} broken!\" [cried|said] {A}.");
        OPT("{A} felt [very sad|upset] and [sat down|started to cry].");
        if (hasB) OPT("{B} [sat next to|hugged] {A}. \"We will find a way,\" {B.he} said.");
        if (hasC) {
            CORE("{A} took {A.his} {o} to {C}, and {C} looked at {it} [carefully|closely].");
            OPT("\"I think I can fix {it},\" said {C}.");
            CORE("{C} got {tool} and fixed the {o} [carefully|slowly|with care].");
        } else if (hasB) {
            CORE("{B} had an idea. \"Let's fix {it} with {tool}!\" {B.he} said.");
            CORE("{A} and {B} worked [together|side by side] and fixed the {o}.");
        } else {
            OPT("{A} [took a deep breath|thought for a moment].");
            CORE("{A} got {tool} and fixed {A.his} {o} all by {A.self}.");
        }
        CORE("Soon the {o} {owas} as good as new!");
        OPT("\"Hooray!\" [shouted|cried] {A}, and {A.he} {oused} {A.his} {o} again.");
        if (hasH) OPT("\"Thank you, {H}!\" said {A}.");
        CORE("From then on, {A} was [very|more] careful with {A.his} {O}.");
        break;
    case P_RESCUE: {
        const pet_t *pet = PICK(st, PETS);
        const stuck_t *sk;
        do sk = PICK(st, STUCK); while (sk->high && !pet->climbs);
        int ip;
        do ip = (int)rnd(st, sizeof ANIMAL_NAMES / sizeof ANIMAL_NAMES[0]); while (ip == ia || (animal && ip == ib));
        set(st, "pet", pet->noun);
        set(st, "psound", pet->sound);
        set(st, "pwhere", sk->where);
        set(st, "ptool", sk->tool);
        set(st, "paction", sk->action);
        set(st, "pname", ANIMAL_NAMES[ip]);
        CORE("[Then|Suddenly], {A} heard a [tiny|small] sound: \"{psound}! {psound}!\"");
        CORE("{A} [followed the sound|looked around] and found a little {pet} {pwhere}.");
        OPT("The poor {pet} was [shaking|scared|crying] and could not get out.");
        OPT("\"Don't be scared, little {pet},\" {A} said [softly|gently]. \"I will help you.\"");
        OPT("{A} tried to reach the {pet}, but {A.he} could not do it alone.");
        if (hasC) {
            alias(st, 'R', 'C');
            CORE("{A} ran to get {C}, and {C} came [quickly|right away] with {ptool}.");
            CORE("{C.he} {paction}.");
        } else if (hasB) {
            alias(st, 'R', 'B');
            CORE("{B} had an idea and [ran to get|found] {ptool}.");
            CORE("{B} {paction}.");
        } else {
            alias(st, 'R', 'A');
            CORE("{A} looked around and found {ptool} [nearby|by the path].");
            CORE("{A.he} {paction}.");
        }
        CORE("The little {pet} was safe! \"{psound}!\" it said happily.");
        OPT("It [licked|nuzzled] {A.his} [hand|nose|cheek] to say thank you.");
        CORE("{A} [named|called] the {pet} {pname}.");
        OPT("{pname} [followed {A} everywhere|played with {G}] for the rest of the {time}.");
        CORE(hasC ? "{pname} followed {A} all the way home, and {C} said {pname} could stay."
                  : "{pname} followed {A} all the way home.");
        break;
    }
    case P_AFRAID:
        set(st, "fearb", pl->fearact.base);
        set(st, "fearp", pl->fearact.past);
        OPT("{Atplace}, {A} [saw|looked at] {fear}.");
        CORE("{A} wanted to {fearb}, but {A.he} {A.was} [scared|afraid|too nervous].");
        OPT("\"[What if I fall?|What if something bad happens?|It looks so big!]\" [whispered {A}|{A.he} said quietly].");
        if (hasH) {
            CORE("\"You can do it, {A}!\" said {H}. \"I will be right [here|next to you].\"");
            OPT("{A} watched {H} {fearb}. ^{H.he} [smiled and waved|laughed] the whole time.");
            OPT("{A} took a deep breath and held {H}'s hand.");
        } else {
            OPT("{A} sat down and thought for a long time.");
            OPT("{A} watched a little bird [hop|fly] without being scared at all.");
            CORE("\"I can be brave,\" {A} said to {A.self}, and {A.he} took a deep breath.");
        }
        OPT("[One, two, three!|{A} counted to three.]");
        CORE("Then {A} {fearp}!");
        CORE("It was [not scary at all|so much fun|easier than {A.he} thought]! \"I did it!\" shouted {A}.");
        OPT("{A} {fearp} again and again until the {time} was almost over.");
        if (hasH) OPT("{H} [clapped|cheered]. \"I knew you could do it!\" {H.he} said.");
        OPT("{A} felt [proud|brave|happy] [and strong|inside|all over].");
        break;
    case P_SHARE:
        CORE("{B} wanted to {ouse} the {o} too. \"Can I have a turn?\" asked {B}.");
        CORE("\"No, {itS} {ois} mine!\" {A.he} said, and [held {A.his} {o} tight|hid {A.his} {o} behind {A.his} back].");
        CORE("{B} felt [sad|hurt] and [walked away|sat alone by {spot1}].");
        OPT("{A} {oused} the {o} alone, but it was not fun [anymore|at all].");
        OPT("{A} looked at {B}. ^{A.he} did not feel good inside.");
        if (hasC) OPT("{C} [saw what happened|came over]. \"Sharing makes playing more fun,\" {C.he} said [softly|kindly].");
        CORE("{A} walked over to {B}. \"I am sorry, {B},\" {A.he} said. \"Do you want to {ouse} my {o}?\"");
        CORE("{B} smiled [a big smile|from ear to ear]. \"Yes, please!\"");
        CORE("{A} and {B} took turns with the {O} and {acted} together.");
        OPT("They laughed and played until the {time} was almost over.");
        break;
    case P_LOSTWAY:
        CORE("[Then|Suddenly], {A} saw a [pretty|bright|yellow|blue] [butterfly|bird] and [followed|chased] it.");
        OPT("{G} went [farther and farther|deeper and deeper into the {place}].");
        CORE("When {G.he} stopped, {G.he} did not know where {G.he} {G.was}.");
        OPT("\"Where {are} {we}?\" [said|whispered] {A}.");
        OPT("{A} felt [scared|lonely|worried], and [a tear rolled down {A.his} cheek|{A.his} heart beat fast].");
        CORE("Then {A} remembered {lm}. \"If I can find {lm}, I can find the way back!\"");
        OPT("{G} climbed [onto a big rock|up a little hill] to look around.");
        CORE("Far away, {A} saw {lm}! ^{G.he} walked toward it [step by step|as fast as {G.he} could].");
        CORE(hasC ? "{C} was waiting there. \"There you are!\" {C.he} said, and gave {A} a big hug."
                  : "Soon {G.he} {G.was} back where {G.he} had started.");
        OPT("{A} [smiled|laughed] with relief.");
        break;
    }

    /* ======================= the end: weather and time again, a moral */
    static const char *const AFTER[NPROBLEM] = {
        "{A.he} never lost {A.his} {o} again.",
        "{A} [showed|told] everyone how the {o} had been fixed.",
        "{A} gave {pname} [a warm bed|some food and water|a soft blanket] and a big hug.",
        "Next time, {A} would not be scared of {fear}.",
        "From then on, {A} and {B} always shared their toys.",
        "{A} would always remember {lm}.",
    };
    static const char *const WEATHER_END[NWEATHER] = {
        "The [warm|bright] sun was still shining over the {place}.",
        "The gray clouds had gone, and the sky was blue again.",
        "The wind was [calm|soft] now, and everything was still.",
        "The rain had stopped, and a [bright|big] rainbow [shone|appeared] over the {place}.",
        "Soft snow was still falling [on the {place}|all around], and everything was white.",
    };
    static const char *const TIME_END[NTIME] = {
        "It was time for lunch, so {G} went home [happy|tired but happy].",
        "It was almost time for dinner, so {G} went home [happy|tired but happy].",
        "[Soon|Then] the first stars came out, and {G} went home to bed.",
    };
    OPT(AFTER[problem]);
    CORE(w == SUNNY && tm == EVENING ? "The sun was going down, and the sky turned [orange|pink] over the {place}."
                                     : WEATHER_END[w]);
    CORE(TIME_END[tm]);
    OPT("What a [wonderful|special|busy] day it had been!");
    static const char *const MORAL[NPROBLEM] = {
        "[{A} learned that when you lose something, you should not give up.|"
        "{A} learned to take good care of the things {A.he} loved.|"
        "The lesson is: look carefully, and do not give up.]",
        "[{A} learned that when something breaks, it can often be fixed.|"
        "{A} learned that being careful keeps your things safe.|"
        "The lesson is: a broken thing can be mended with a little help.]",
        "[{A} learned that it feels good to help others.|"
        "{A} learned that even small friends need help sometimes.|"
        "The lesson is: always be kind to animals.]",
        "[{A} learned that being brave means trying, even when you are scared.|"
        "{A} learned that {fear} {fearwas} not so scary after all.|"
        "The lesson is: you can do hard things if you try.]",
        "[{A} learned that sharing makes everyone happy.|"
        "{A} learned that playing together is more fun than playing alone.|"
        "The lesson is: good friends share.]",
        "[{A} learned to [always |]remember the way {A.he} came.|"
        "{A} learned to stay close and look at the things around {A.him}.|"
        "The lesson is: always know how to find your way home.]",
    };
    OPT("That night, {A} [dreamed about|thought about] the {place} [and smiled|before falling asleep].");
    CORE(MORAL[problem]);
}

/* Chooses optional beats until the sentence count reaches a target in
 * [lo, hi], then writes the kept beats into out (NUL-terminated); returns
 * the length. */
static int assemble(story *st, int lo, int hi, char *out, int *nsent) {
    int keepb[MAX_BEATS], order[MAX_BEATS], nopt = 0, total = 0;
    for (int i = 0; i < st->nbeat; i++) {
        keepb[i] = st->beat[i].core;
        if (st->beat[i].core) total += st->beat[i].nsent;
        else order[nopt++] = i;
    }
    for (int i = nopt - 1; i > 0; i--) { int j = (int)rnd(st, (uint32_t)i + 1), x = order[i]; order[i] = order[j]; order[j] = x; }
    int target = lo + (int)rnd(st, (uint32_t)(hi - lo + 1));
    for (int pass = 0; pass < 2; pass++) {
        int bound = pass ? hi : target;
        if (pass && total >= lo) break;
        for (int k = 0; k < nopt; k++) {
            int i = order[k];
            if (!keepb[i] && total + st->beat[i].nsent <= bound) { keepb[i] = 1; total += st->beat[i].nsent; }
        }
    }
    /* Still short (the beats left are too long): swap a kept beat for a
     * longer one that lands in range. */
    for (int a = 0; a < nopt && total < lo; a++) {
        int i = order[a];
        if (!keepb[i]) continue;
        for (int b = 0; b < nopt; b++) {
            int j = order[b], t2 = total - st->beat[i].nsent + st->beat[j].nsent;
            if (!keepb[j] && t2 >= lo && t2 <= hi) { keepb[i] = 0; keepb[j] = 1; total = t2; break; }
        }
    }
    int m = 0;
    for (int i = 0; i < st->nbeat; i++) {
        if (!keepb[i]) continue;
        if (m) out[m++] = ' ';
        memcpy(out + m, st->raw + st->beat[i].off, (size_t)st->beat[i].len);
        m += st->beat[i].len;
    }
    out[m] = 0;
    *nsent = total;
    return m;
}

static int make_story(story *st, uint64_t seed, int lo, int hi, char *out, int *nsent) {
    st->rng = seed ^ 0x5A17C0FFEE5EEDull; /* sra_splitmix64 hashes the counter: nearby seeds are unrelated */
    st->nslot = st->aused = st->rawlen = st->nbeat = st->bad = 0;
    tell(st);
    return st->bad ? -1 : assemble(st, lo, hi, out, nsent);
}

/* ================================================================= main */

static void usage(FILE *f) {
    fprintf(f,
            "usage: sra-stories --n N [--seed S] [--jsonl] [--min-sentences A] [--max-sentences B]\n"
            "  --n N              number of stories (0 .. 100000000)\n"
            "  --seed S           story i is generated from seed S+i alone (default 1)\n"
            "  --jsonl            one JSON object per line: {\"text\": ..., \"seed\": S+i}\n"
            "                     (default: one story per line, a blank line between stories)\n"
            "  --min-sentences A  at least A sentences per story (default 12, at most %d)\n"
            "  --max-sentences B  at most B sentences per story (default 22, at least %d:\n"
            "                     the plot itself needs up to that many)\n"
            "Simple English stories from a probabilistic grammar: a cast of 1-3 characters\n"
            "with consistent pronouns, a place, weather and time of day, a problem (a lost\n"
            "object, a broken toy, an animal to rescue, a fear, a toy to share, a way home),\n"
            "its resolution, dialogue and a moral. Deterministic: the same seed gives the\n"
            "same story. Training and held-out sets come from disjoint seed ranges.\n"
            "example: sra-stories --n 4000 --seed 1 --jsonl > train.jsonl\n",
            STORY_MIN_REACH, CORE_MAX_SENTENCES);
}

static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] == '-' || s[0] == '+' || s[0] == ' ' || v < lo || v > hi) {
        fprintf(stderr, "sra-stories: %s %s: expected an integer in [%llu, %llu]\n", flag, s,
                (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    uint64_t n = 0, seed = 1, lo = 12, hi = 22;
    int have_n = 0, jsonl = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--n") && more) { if (parse_u64(a, argv[++i], 0, 100000000, &n)) return 2; have_n = 1; }
        else if (!strcmp(a, "--seed") && more) { if (parse_u64(a, argv[++i], 0, UINT64_MAX, &seed)) return 2; }
        else if (!strcmp(a, "--min-sentences") && more) { if (parse_u64(a, argv[++i], 1, STORY_MIN_REACH, &lo)) return 2; }
        else if (!strcmp(a, "--max-sentences") && more) { if (parse_u64(a, argv[++i], CORE_MAX_SENTENCES, 1000, &hi)) return 2; }
        else if (!strcmp(a, "--jsonl")) jsonl = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "sra-stories: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!have_n) {
        fprintf(stderr, "sra-stories: --n N is required\n");
        usage(stderr);
        return 2;
    }
    if (lo > hi) {
        fprintf(stderr, "sra-stories: --min-sentences %llu is more than --max-sentences %llu\n",
                (unsigned long long)lo, (unsigned long long)hi);
        return 2;
    }
    story *st = malloc(sizeof *st);
    char *text = malloc(RAW_BYTES + 1);
    if (!st || !text) { fprintf(stderr, "sra-stories: out of memory\n"); return 1; }
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    int rc = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t s = seed + i; /* wraps past 2^64-1 */
        int ns;
        int len = make_story(st, s, (int)lo, (int)hi, text, &ns);
        if (len < 0) {
            fprintf(stderr, "sra-stories: internal error in story %llu (a template is broken)\n", (unsigned long long)s);
            rc = 1;
            break;
        }
        if (jsonl) {
            fputs("{\"text\": ", stdout);
            sra_json_put_string(stdout, text, (size_t)len);
            printf(", \"seed\": %llu}\n", (unsigned long long)s);
        } else {
            if (i) fputc('\n', stdout);
            fwrite(text, 1, (size_t)len, stdout);
            fputc('\n', stdout);
        }
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "sra-stories: write error: %s\n", strerror(errno));
        rc = 1;
    }
    free(st);
    free(text);
    return rc;
}
