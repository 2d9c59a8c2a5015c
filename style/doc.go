// Package style implements structured style modelling (METHODS.md §3): a
// character's style as three explicit parts, a lexical signature, a
// syntactic profile and pragmatic tags, and scores that say whether a
// rewrite kept the meaning of its input and took a character's style.
//
// Run builds the profiles of one or more characters (a Set, saved as JSON);
// Scorer compares texts with them; Classify measures how well the profiles
// separate the voices of a voices corpus; WriteReport renders an HTML page.
// Language-specific work (sentences, part-of-speech tags, stems,
// stopwords) is behind the Language interface; English is the one
// implementation (prose/v2's tokenizer and averaged-perceptron tagger,
// Penn Treebank tags; Snowball's English stemmer and stopwords).
//
// # Lexical signature
//
// Content words are the tokens holding a letter that are not stopwords and
// not contraction clitics (n't, 's, …), lower-cased and stemmed. For a
// character c and its background (the other characters and the neutral
// text), PMI(w, c) = log2(p(w|c)/p(w)) with p(w|c) = count_c(w)/N_c and
// p(w) = count(w)/N over the pool of every character's and the background's
// content words (so p(w) > 0 whenever count_c(w) > 0). The lexicon keeps the
// stems the character used at least MinCount times (default 5); keywords
// are the lexicon's positive-PMI stems ranked by (1 + ln count)·PMI, top
// TopK (default 25), shown in their most frequent surface form.
//
// To score a text, each of its content words gets its word PMI for the
// character: the lexicon's value; for a stem the pool uses at least
// MinCount times but the character less often, the PMI with the
// character's count taken as ½ (evidence against the character); 0 for
// stems the pool hardly knows. The text's lexical evidence m is the mean
// word PMI over its content words. The lexical centroid is LexSelf, m of
// the character's own lines, with LexSpread the standard deviation of m over
// the character's chunks of ChunkWords words.
//
// # Syntactic profile
//
// Each sentence is parsed into a shallow tree by these rules, applied in
// order to the tagged tokens (QT is a DT, PDT or JJ token whose word is a
// quantifier: all every each some any no both either neither many much few
// several):
//
//	INTJ → UH+
//	NP   → PRP | EX
//	NP   → [PDT|QT] [DT|PRP$|WP$|QT] (JJ*|CD|QT)* NN* (POS (JJ|CD|QT)* NN*)*
//	       with at least one noun, or a determiner, number or quantifier
//	VP   → (RB* (MD|VB*|TO VB))+ [RP]
//	ADJP → RB* JJ+          ADVP → RB+
//	X    → X (, X)* [,] CC X           for X in NP, ADJP, ADVP
//	PP   → IN NP | TO NP               (not for a subordinating IN before NP VP)
//	X    → X (, X)* [,] CC X           for X in PP, VP
//	SBAR → H S   H a WDT, WP, WP$ or WRB (a clause with a VP; not a question's
//	             opening wh-word), or THAT (that, whether) or a subordinating
//	             IN (because although though if unless until till while whilst
//	             whereas since lest once as after before except) with NP before
//	             VP; S runs to the next , : CC or sentence end
//	ROOT → S [,|:] CC S …              where both sides are clauses
//	ROOT → the remaining nodes          otherwise
//
// Every rule "LHS → children" of every tree is counted (all its children
// are phrase or part-of-speech nodes); the profile keeps P(rule | LHS) of
// the rules seen at least twice. The 14 dimensions are ratios of these
// counts (#X is the number of rules with left-hand side X):
//
//	referentiality      NP → PRP | EX | DT | WP (a lone pronoun, there, demonstrative or wh-word), over #NP
//	interjections       INTJ children of ROOT and S rules, over #ROOT
//	declarativity       ROOT rules ending in "." with an S child, or an NP before a VP, over #ROOT
//	clausal embedding   SBAR rules headed by a wh-word or THAT (relative and complement clauses), over #ROOT
//	subordination       SBAR → IN S (adverbial clauses), over #ROOT
//	parallelism         rules with a CC child whose other phrase children (at least two) all share
//	                    the left-hand side's label (S for ROOT), over #ROOT
//	coordination        CC children of all rules, over #ROOT
//	modifier density    JJ* and RB* children of NP, VP, ADJP and ADVP rules, over their count
//	nominal complexity  the mean number of children of NP rules
//	prepositions        #PP over #ROOT
//	topic fronting      ROOT rules whose first child (after CC, INTJ and punctuation) is PP, ADVP,
//	                    SBAR or ADJP, or an NP followed by a comma, over #ROOT
//	fragments/ellipsis  ROOT rules with neither a VP nor an S child, over #ROOT
//	compression         ROOT and S rules with at most three non-punctuation children, over #ROOT + #S
//	quantification      NP rules with a CD, QT or PDT child, over #NP
//
// A character's syntactic vector is computed from the counts of all its
// lines; Spread is each dimension's standard deviation over chunks of
// ChunkWords words (at least SpreadFloor). Everything is summed in a fixed
// order: the same text gives the same bits (tested).
//
// # Pragmatic tags
//
// A tag set (tags.yaml built in; masque style tags prints it; any edited
// copy can be given) names tags with prototype sentences and a threshold
// (default 0.4). Embeddings come from an Embedder: a masque model (the
// mean of the last hidden state over the text's tokens, unit length) or
// any OpenAI-compatible /v1/embeddings endpoint. A tag's prototype is the
// mean embedding of its sentences; tag score t_k(e) = cos(e − P, proto_k −
// P) with P the mean of all prototype sentences; a tag is on when the
// score of the character's centroid (the mean embedding of up to EmbedLines
// of its lines) is above the threshold. Profiles record the embedder and
// the tag set's SHA-256, and are refused for another.
//
// # Style similarity and scores
//
// A text's similarity to a character, each part in [0, 1]:
//
//	lexical   = exp(−½ z²), z = (LexSelf − m)/LexSpread (1 when m ≥ LexSelf)
//	syntactic = mean over the 14 dimensions of exp(−½ z_d²), z_d = (v_d − profile_d)/spread_d
//	pragmatic = ½ (max(0, cos(e − B, centroid − B)) + 1 − mean_k |t_k(e) − t_k(centroid)|/2)
//	            with B the mean embedding of all embedded lines
//	style     = the mean of the parts present (pragmatic needs an embedder)
//
// Scoring a rewrite (neutral input, styled output): semantic = cosine of the
// two embeddings; style as above for the output; VSS = style if semantic >
// 0.75 (SemanticGate) else 0; H = the harmonic mean of semantic (floored at
// 0) and style.
package style
