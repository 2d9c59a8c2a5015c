# make_slices.py [SOURCES]: cuts the test slices in sources/ from the installed packages
# (run scripts/install-voices.sh first). Deterministic: gzip with mtime 0.
import gzip, os, re, shutil, sys
S=sys.argv[1] if len(sys.argv)>1 else "/var/cache/masque/voices"; T=os.path.join(os.path.dirname(os.path.abspath(__file__)),"sources")
shutil.rmtree(T, ignore_errors=True)
def w(rel, data, gz=False):
    p=os.path.join(T,rel); os.makedirs(os.path.dirname(p),exist_ok=True)
    if gz:
        with gzip.GzipFile(p,'wb',mtime=0) as f: f.write(data.encode())
    else: open(p,'w',encoding='utf-8').write(data)
# kjv: Genesis 1:1-8, Psalm 23, John 3:16-17, Revelation 22:21
kjv=[l for l in open(S+"/kjv/bible.txt",encoding='utf-8')]
pick=lambda pre: [l for l in kjv if re.match(pre,l)]
w("kjv/bible.txt","".join(pick(r"Ge1:[1-8] ")+pick(r"Psa23:")+pick(r"John3:1[67] ")+pick(r"Rev22:21 ")))
# web: the same verses, plus headings, the preface (Genesis 0:0), Genesis 1:0, Psalm 23:0, and a deuterocanon verse
ent=open(S+"/web/engWEB.imp",encoding='utf-8').read().split("$$$")[1:]
def wk(k): return [e for e in ent if e.split("\n",1)[0]==k]
keys=["[ Module Heading ]","[ Testament 1 Heading ]","Genesis 0:0","Genesis 1:0"]+["Genesis 1:%d"%i for i in range(1,9)]+["Psalms 23:0"]+["Psalms 23:%d"%i for i in range(1,7)]+["Tobit 1:1","[ Testament 2 Heading ]","John 3:16","John 3:17","Revelation of John 22:21"]
out=[]
for k in keys:
    e=wk(k)
    assert e, k
    out.append("$$$"+e[0])
w("web/engWEB.imp","".join(out))
# spurgeon: heading, preface (Psalms 0:0), Psalm 117
ent=open(S+"/spurgeon/TDavid.imp",encoding='utf-8').read().split("$$$")[1:]
out=[]
for k in ["[ Testament 1 Heading ]","Psalms 0:0","Psalms 117:0","Psalms 117:1"]:
    e=[x for x in ent if x.split("\n",1)[0]==k]; assert e,k; out.append("$$$"+e[0])
w("spurgeon/TDavid.imp","".join(out))
# sotu: two whole addresses and the opening of Biden 2021 (stage directions)
for f in ["1790_george_washington_n.txt","1932_herbert_hoover_r.txt"]:
    w("sotu/package/data/"+f, open(S+"/sotu/package/data/"+f,encoding='utf-8').read())
b=open(S+"/sotu/package/data/2021_joseph_r_biden_d.txt",encoding='utf-8').read()
w("sotu/package/data/2021_joseph_r_biden_d.txt", b[:b.index(" ",3000)])
# jargon: start of the lexicon, AI entries, ASCII (box table), gweep..H index, zorkmid + appendices
j=gzip.open("/usr/share/doc/jargon-text/jargon.txt.gz").read().decode("utf-8").split("\n")
def rng(a,b): return j[a-1:b]
asc=[i for i,l in enumerate(j) if l.startswith("   :ASCII:")][0]+1
heads=[i for i,l in enumerate(j) if re.match(r"^   :.+?:( .*)?$",l)]
def entries(first,n):  # n whole entries from the header whose text starts with first
    i=[k for k,h in enumerate(heads) if j[h].startswith("   :"+first+":")][0]
    return j[heads[i]:heads[i+n]]
gw=[k for k in heads if j[k].startswith("   :gweep:")][0]
zm=[k for k in heads if j[k].startswith("   :zorkmid:")][0]
w("jargon/jargon.txt.gz","\n".join(rng(1,3)+j[6789:heads[0]]+entries("(TM)",4)+entries("AI",2)+entries("ASCII",1)+j[gw:20660]+j[zm:zm+20])+"\n",gz=True)
# dictd dictionaries: chosen entries, offsets recomputed
A="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
def enc(n):
    s=""
    while True:
        s=A[n%64]+s; n//=64
        if n==0: return s
def dec(s):
    n=0
    for c in s: n=n*64+A.index(c)
    return n
def dictslice(name, voice, heads):
    data=gzip.open("/usr/share/dictd/%s.dict.dz"%name).read()
    idx=[l.rstrip("\n").split("\t") for l in open("/usr/share/dictd/%s.index"%name,encoding='utf-8')]
    out=b""; lines=[]; placed={}
    for h,o,n in idx:
        if h in heads or h.lower() in heads:
            o,n=dec(o),dec(n)
            if o not in placed:
                placed[o]=len(out); out+=data[o:o+n]
            lines.append("%s\t%s\t%s"%(h,enc(placed[o]),enc(n)))
    w(voice+"/"+name+".index","\n".join(lines)+"\n")
    p=os.path.join(T,voice,name+".dict.dz")
    with gzip.GzipFile(p,'wb',mtime=0) as f: f.write(out)
dictslice("gcide","webster",{"00-database-short","00-database-info","Abandon","Bank","Hack","hack","Cynic","monkey","taxicab","zeal"})
dictslice("devil","devil",{"00databaseshort","00databaseinfo","abasement","academe","academy","baptism","zeal","cynic","bank"})
# wordnet: index lines and their synsets for a few lemmas, with the licence header
lem={"bank","depository_financial_institution","cynic","zeal","hack","abandon","monkey","cynical","zealous","zealously","cynically"}
os.makedirs(T+"/wordnet",exist_ok=True)
for pos in ["noun","verb","adj","adv"]:
    idx=open("/usr/share/wordnet/index."+pos,encoding='utf-8').read().split("\n")
    hdr=[l for l in idx if l.startswith("  ")][:29]
    keep=[l for l in idx if l.split(" ")[0] in lem]
    offs=set()
    for l in keep:
        f=l.split(); n=int(f[2]); p=int(f[3]); offs|=set(f[4+p+2:4+p+2+n])
    data=open("/usr/share/wordnet/data."+pos,encoding='utf-8').read().split("\n")
    dk=[l for l in data if l[:8] in offs]
    w("wordnet/index."+pos,"\n".join(hdr+keep)+"\n")
    w("wordnet/data."+pos,"\n".join([l for l in data if l.startswith("  ")][:29]+dk)+"\n")
# wesnoth: one scenario
c="wesnoth/root/usr/share/games/wesnoth/1.16/data/campaigns/Heir_To_The_Throne/scenarios/01_The_Elves_Besieged.cfg"
w(c, open(S+"/"+c,encoding='utf-8').read())
w("versions.tsv", open(S+"/versions.tsv").read())
