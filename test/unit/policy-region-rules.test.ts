import { describe, expect, it } from 'vitest';
import { RESIDENCY_ZONES } from '../../src/policy/vocabulary.js';
import { REGION_RULES, STRICTEST_RULE, UNKNOWN_REGION, rulesFor } from '../../src/policy/region-rules.js';

/** US state and DC codes (ISO 3166-2:US), for checking subdivision keys. */
const US_STATES = new Set(
  'AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY'.split(' '),
);
const regionName = new Intl.DisplayNames(['en'], { type: 'region' });

describe('region table', () => {
  it.each(Object.entries(REGION_RULES))('%s has a valid code, values and a citation', (code, rule) => {
    expect(code).toMatch(/^[A-Z]{2}(-[A-Z0-9]{1,3})?$/);
    const [country, sub] = code.split('-') as [string, string | undefined];
    // Intl returns the code itself for a code it does not know.
    expect(regionName.of(country)).not.toBe(country);
    if (sub !== undefined) {
      expect(country).toBe('US');
      expect(US_STATES.has(sub)).toBe(true);
    }
    expect(['prohibited', 'explicit-consent', 'allowed']).toContain(rule.faceRecognition);
    // it identifies no one: every shipped region allows it (region-rules-data.ts, OBJECT_DETECTION)
    expect(rule.objectDetection).toBe('allowed');
    expect(RESIDENCY_ZONES).toContain(rule.residencyZone);
    expect(['allowed', 'needs-consent', 'forbidden']).toContain(rule.crossBorder);
    if (rule.maxTemplateRetentionDays !== null) expect(Number.isInteger(rule.maxTemplateRetentionDays) && rule.maxTemplateRetentionDays >= 0).toBe(true);
    expect(rule.citation.law.trim()).not.toBe('');
    expect(rule.citation.section.trim()).not.toBe('');
    expect(new URL(rule.citation.url).protocol).toMatch(/^https?:$/);
  });

  it('seeds the statutes with their figures', () => {
    expect(REGION_RULES['US-IL']).toMatchObject({ faceRecognition: 'explicit-consent', maxTemplateRetentionDays: 1095, residencyZone: 'us' });
    expect(REGION_RULES['US-IL']?.citation.section).toContain('740 ILCS 14/15');
    expect(REGION_RULES['US-TX']).toMatchObject({ faceRecognition: 'explicit-consent', maxTemplateRetentionDays: 365 });
    expect(REGION_RULES['US-TX']?.citation.section).toContain('503.001');
    expect(REGION_RULES['US-WA']?.citation.section).toContain('19.375');
    expect(REGION_RULES.DE).toMatchObject({ faceRecognition: 'explicit-consent', residencyZone: 'eu', crossBorder: 'needs-consent' });
    expect(REGION_RULES.DE?.citation.section).toContain('9(2)(a)');
    expect(REGION_RULES.GB?.citation.law).toContain('UK GDPR');
    expect(REGION_RULES.CN).toMatchObject({ faceRecognition: 'explicit-consent', residencyZone: 'cn', crossBorder: 'forbidden' });
    expect(REGION_RULES.CN?.citation.section).toMatch(/28-29/);
    // Every EU/EEA state is in, all with the GDPR rule.
    for (const c of ['AT', 'FR', 'GR', 'IE', 'NO', 'IS', 'LI', 'SE']) expect(REGION_RULES[c]?.residencyZone).toBe('eu');
  });
});

describe('rulesFor', () => {
  it('picks the most specific entry first', () => {
    expect(rulesFor('US-IL')).toMatchObject({ matched: 'US-IL', maxTemplateRetentionDays: 1095 });
    expect(rulesFor('US-NY')).toMatchObject({ matched: 'US', faceRecognition: 'explicit-consent' });
    expect(rulesFor('US-OR').matched).toBe('US'); // Portland's ban is municipal: not representable
    expect(rulesFor('US')).toMatchObject({ matched: 'US' });
    expect(rulesFor('DE-BY')).toMatchObject({ matched: 'DE', residencyZone: 'eu' });
    expect(rulesFor('CN-GD')).toMatchObject({ matched: 'CN', crossBorder: 'forbidden' });
  });

  it('ignores case and surrounding space', () => {
    expect(rulesFor(' us-tx ').matched).toBe('US-TX');
    expect(rulesFor('de').matched).toBe('DE');
  });

  it.each([undefined, '', 'XX', 'JP', 'ZZ', 'U', 'USA', 'US-', 'US-ILL1', '__proto__', 'constructor', 'toString', 'EU'])(
    'gives the strictest rule for unknown or malformed %j',
    (region) => {
      const rule = rulesFor(region);
      expect(rule).toEqual({ ...STRICTEST_RULE, matched: UNKNOWN_REGION });
      expect(rule).toMatchObject({ faceRecognition: 'prohibited', crossBorder: 'forbidden', residencyZone: 'global', maxTemplateRetentionDays: 0 });
      // strictest on what identifies people or moves their data; object detection does neither
      expect(rule.objectDetection).toBe('allowed');
    },
  );

  it('returns a copy: callers cannot change the table', () => {
    const rule = rulesFor('US-IL');
    rule.faceRecognition = 'allowed';
    expect(rulesFor('US-IL').faceRecognition).toBe('explicit-consent');
    expect(Object.isFrozen(REGION_RULES)).toBe(true);
  });
});
