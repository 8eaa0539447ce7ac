/**
 * Realistic compressible values for the engine bench's json workload: JSON
 * documents of 200-2,000 bytes (uniform), shaped like the orders of a web
 * shop. Like real documents they repeat their field names and draw many
 * values from small vocabularies (statuses, cities, product names), and
 * like real documents they also carry what does not compress: random ids,
 * timestamps, prices and quantities. Seeded and deterministic, so every run
 * and every codec sees the same bytes.
 *
 *   const doc = makeDocuments(1);
 *   doc();   // Buffer: {"id":"ord_q0ZTNT4ZhmduG7B5","createdAt":"2026-09-14T19:33:22.031Z",...}
 */

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const FIRST = [
  'Anna',
  'Ben',
  'Carla',
  'David',
  'Elena',
  'Farid',
  'Greta',
  'Hugo',
  'Ines',
  'Jonas',
  'Kira',
  'Luca',
  'Mara',
  'Noah',
  'Olga',
  'Paul',
  'Quinn',
  'Rosa',
  'Sami',
  'Tara',
  'Uwe',
  'Vera',
  'Wim',
  'Xenia',
  'Yusuf',
  'Zoe',
  'Mateo',
  'Lea',
  'Omar',
  'Ivy',
];
const LAST = [
  'Schmidt',
  'Silva',
  'Tanaka',
  'Nguyen',
  'Kowalski',
  'Rossi',
  'Dubois',
  'Müller',
  'Garcia',
  'Johansson',
  'Okafor',
  'Novak',
  'Haddad',
  'Kim',
  'Fischer',
  'Costa',
  'Moreau',
  'Yilmaz',
  'Olsen',
  'Patel',
];
const CITIES = [
  ['Berlin', 'DE', '10115'],
  ['Lisbon', 'PT', '1100-148'],
  ['Tokyo', 'JP', '100-0001'],
  ['Lyon', 'FR', '69001'],
  ['Austin', 'US', '73301'],
  ['Oslo', 'NO', '0150'],
  ['Milan', 'IT', '20121'],
  ['Porto', 'PT', '4000-322'],
  ['Seoul', 'KR', '04524'],
  ['Krakow', 'PL', '30-001'],
  ['Toronto', 'CA', 'M5H 2N2'],
  ['Nairobi', 'KE', '00100'],
];
const STREETS = [
  'Main St',
  'Harbour Road',
  'Rua Augusta',
  'Lindenallee',
  'Via Roma',
  'Rue de la Paix',
  'Oak Avenue',
  'Station Road',
  'Königstraße',
  'Elm Street',
];
const ADJECTIVES = [
  'Classic',
  'Organic',
  'Wireless',
  'Compact',
  'Deluxe',
  'Vintage',
  'Ergonomic',
  'Portable',
  'Recycled',
  'Smart',
  'Heavy-duty',
  'Slim',
];
const NOUNS = [
  'Coffee Grinder',
  'Desk Lamp',
  'Backpack',
  'Water Bottle',
  'Headphones',
  'Notebook',
  'Chair',
  'Kettle',
  'Yoga Mat',
  'Phone Case',
  'Sneakers',
  'Teapot',
  'Monitor Stand',
  'Blender',
];
const STATUSES = ['pending', 'paid', 'packed', 'shipped', 'delivered', 'returned', 'cancelled'];
const METHODS = ['standard', 'express', 'pickup', 'same-day'];
const TAGS = ['gift', 'priority', 'b2b', 'first-order', 'loyalty', 'promo-spring', 'fragile', 'bulk'];
const NOTES = [
  'Please leave the parcel with the neighbour if nobody is home.',
  'Call before delivery.',
  'Gift wrap, no invoice in the box.',
  'Deliver to the back entrance.',
  'Customer asked for a paper receipt.',
];
const DAY_MS = 86_400_000;

/** A function returning the next document (a Buffer of 200-2,000 bytes of JSON) of a seeded sequence. */
export function makeDocuments(seed = 1, { minBytes = 200, maxBytes = 2000 } = {}) {
  let state = seed >>> 0;
  // mulberry32: small, fast, good enough for shaping test data.
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (list) => list[Math.floor(random() * list.length)];
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
  const chars = (alphabet, n) => {
    let out = '';
    for (let i = 0; i < n; i++) out += alphabet[Math.floor(random() * alphabet.length)];
    return out;
  };

  return function nextDocument() {
    const targetBytes = int(minBytes, maxBytes);
    const created = 1_767_225_600_000 + int(0, 365 * DAY_MS);
    const [city, country, zip] = pick(CITIES);
    const first = pick(FIRST);
    const last = pick(LAST);
    const order = {
      id: `ord_${chars(BASE62, 16)}`,
      createdAt: new Date(created).toISOString(),
      status: pick(STATUSES),
      currency: pick(['EUR', 'USD', 'JPY', 'GBP']),
      total: int(199, 49_999) / 100,
    };
    // Parts added in this order while the document is below its target; then items up to it.
    const parts = [
      () => {
        order.customer = {
          id: `cus_${chars(BASE62, 14)}`,
          name: `${first} ${last}`,
          email: `${first.toLowerCase()}.${last.toLowerCase()}${int(1, 99)}@example.${pick(['com', 'org', 'net', 'de'])}`,
          country,
        };
      },
      () => {
        order.updatedAt = new Date(created + int(0, 30 * DAY_MS)).toISOString();
        order.tags = [];
        for (let n = int(0, 3); n > 0; n--) order.tags.push(pick(TAGS));
      },
      () => {
        order.shipping = {
          method: pick(METHODS),
          address: { street: `${int(1, 250)} ${pick(STREETS)}`, city, zip, country },
        };
        if (random() < 0.3) order.note = pick(NOTES);
      },
    ];
    let text = JSON.stringify(order);
    for (const part of parts) {
      if (text.length >= targetBytes - 60) break;
      part();
      text = JSON.stringify(order);
    }
    let total = 0;
    // A document ends within one item (~115 bytes) of its target.
    while (text.length < targetBytes - 115) {
      const qty = int(1, 5);
      const unitPrice = int(199, 49_999) / 100;
      order.items ??= [];
      order.items.push({
        sku: `SKU-${int(10_000, 99_999)}`,
        name: `${pick(ADJECTIVES)} ${pick(NOUNS)}`,
        qty,
        unitPrice,
        lineId: chars('0123456789abcdef', 8),
      });
      total += qty * unitPrice;
      order.total = Math.round(total * 100) / 100;
      text = JSON.stringify(order);
    }
    return Buffer.from(text);
  };
}
